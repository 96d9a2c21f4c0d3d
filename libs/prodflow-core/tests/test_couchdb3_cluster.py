"""What prodflow needs from a 3-node CouchDB 3.5 cluster (README: "CouchDB 3 clusters"), on a real one.

Three nodes of the release in ``../shared/couchdb`` on loopback, ``n = 3`` copies, job databases of ``q = 8``:
- a database has every shard range on every node, the event stream one range (one order of ``_changes``);
- the kept counts stay exact while a node is killed with SIGKILL, when the follower moves to another node (as
  behind a load balancer) with the checkpoint it had, and after the killed node comes back and catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from prodflow_core.couch import Change, ChangesFollower, CouchClient, CouchDatabase
from prodflow_core.couch.cluster import LocalCouchDB3Cluster
from prodflow_core.couch.couchdb3 import couchdb3_dist, couchdb3_missing_reason
from prodflow_core.counts import CountsCheckpoints, JobCounter, label_status_counts
from prodflow_core.testing_sql import counts_engine
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.integration

JOB_SHARDS = 8
LABEL = "cluster-label"
FINAL = {"waiting": 300, "completed": 500, "failed": 200}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCouchDB3Cluster]:
    if couchdb3_dist() is None:
        pytest.skip(couchdb3_missing_reason())
    with LocalCouchDB3Cluster(3, n=3, q=2, data_dir=tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with counts_engine(f"sqlite:///{tmp_path / 'counts.sqlite'}") as made:
        yield made


def _job(n: int, status: str = "waiting", **extra: Any) -> dict[str, Any]:
    return {
        "_id": f"job:{LABEL}:ModA:{n}:0:p1",
        "type": "job",
        "experiment": "snoplus",
        "label": LABEL,
        "module": "ModA",
        "status": status,
        "site": "site-a",
        "campaign_id": "camp-000001",
        "events": 10,
        **extra,
    }


async def _move(db: CouchDatabase, numbers: range, status: str) -> None:
    docs = await db.get_many([_job(n)["_id"] for n in numbers])
    moved = [{**doc, "status": status} for doc in docs.values()]
    assert all(result.ok for result in await db.bulk_docs(moved, chunk_size=250))


async def _tally(db: CouchDatabase) -> dict[str, int]:
    tally: dict[str, int] = {}
    for row in (await db.all_docs(include_docs=True)).rows:
        if row["id"].startswith("job:"):
            tally[row["doc"]["status"]] = tally.get(row["doc"]["status"], 0) + 1
    return tally


@contextlib.asynccontextmanager
async def _following(db: CouchDatabase, counter: JobCounter) -> AsyncIterator[ChangesFollower]:
    async def count(changes: list[Change]) -> None:
        await counter.apply(db.name, [(c.id, None if c.deleted else c.doc) for c in changes])

    stop = asyncio.Event()
    follower = ChangesFollower(
        db,
        "monitor-0",
        count,
        batch_size=200,
        longpoll_s=1.0,
        retry_s=0.2,
        checkpoints=CountsCheckpoints(counter, db.name),
    )
    task = asyncio.create_task(follower.run(stop))
    try:
        yield follower
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _counts_reach(
    engine: AsyncEngine, database: str, wanted: dict[str, int], served_by: Path, timeout_s: float = 60
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (counts := await label_status_counts(engine, database, LABEL)) != wanted:
        if asyncio.get_running_loop().time() > deadline:
            # Seen once in CI (the counts stopped at the first 600 jobs), never here: say what the node served.
            log = await asyncio.to_thread(served_by.read_text)
            served = [line for line in log.splitlines() if "_changes" in line or "[error]" in line]
            pytest.fail(f"kept {counts}, documents say {wanted}; last _changes and errors on the follower's node:\n"
                        + "\n".join(line[:300] for line in served[-20:]))  # fmt: skip
        await asyncio.sleep(0.2)


async def test_every_node_holds_every_shard_and_the_event_stream_is_one_range(cluster: LocalCouchDB3Cluster) -> None:
    async with CouchClient(cluster.urls[0]) as client:
        await client.db("jobs-layout").ensure(shards=JOB_SHARDS)
        await client.db("events-layout").ensure(shards=1)
        jobs = await client.request("GET", "jobs-layout/_shards")
        events = await client.request("GET", "events-layout/_shards")
    nodes = sorted(node.node_name for node in cluster.nodes)
    assert len(jobs["shards"]) == JOB_SHARDS and all(sorted(c) == nodes for c in jobs["shards"].values())
    assert list(events["shards"]) == ["00000000-ffffffff"] and sorted(events["shards"]["00000000-ffffffff"]) == nodes

    # One range: the changes come in the order of the writes (here each through another node), read through any.
    # Each write is acknowledged by all three copies (w=3) before the next is sent: with the default quorum (2 of
    # 3) the next write, through another node, can reach the third copy first (seen once the client got faster),
    # and that copy then lists the two in the other order.
    written = [f"event-{n:03d}-{'zyx'[n % 3]}" for n in range(60)]
    clients = [CouchClient(url) for url in cluster.urls]
    try:
        for n, doc_id in enumerate(written):
            await clients[n % 3].request("PUT", f"events-layout/{doc_id}", params={"w": 3}, json_body={})
        for client in clients:
            batch = await client.db("events-layout").changes(since="0", limit=1000)
            assert [row["id"] for row in batch.results] == written
    finally:
        for client in clients:
            await client.aclose()


async def test_kept_counts_stay_exact_through_a_killed_node_and_a_failover(
    cluster: LocalCouchDB3Cluster, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="prodflow.couch")  # every CouchDB call, shown if the test fails
    counter = JobCounter(engine, owner="monitor-0")
    first, second = CouchClient(cluster.urls[0]), CouchClient(cluster.urls[1])
    try:
        db = first.db("jobs-counted")
        await db.ensure(shards=JOB_SHARDS)
        async with _following(db, counter):
            assert all(r.ok for r in await db.bulk_docs([_job(n) for n in range(1000)], chunk_size=250))
            await _move(db, range(0, 300), "running")
            cluster.kill(2)  # a node dies mid-campaign: writes still reach a quorum (2 of 3 copies)
            await _move(db, range(300, 600), "running")
            await _move(db, range(0, 200), "completed")
            await _counts_reach(
                engine, db.name, {"waiting": 400, "running": 400, "completed": 200}, cluster.nodes[0].log_path
            )

        # The node the follower used goes away (a load balancer sends it elsewhere): the checkpoint taken from
        # the first node's feed resumes on the second; changes it hands over again move nothing.
        moved = second.db("jobs-counted")
        async with _following(moved, counter):
            await _move(moved, range(200, 500), "completed")
            cluster.restart(2)
            await _move(moved, range(500, 700), "failed")
            await _counts_reach(engine, db.name, FINAL, cluster.nodes[1].log_path)
        # _all_docs reads one copy of each range: while the restarted node catches up, a read through any node
        # may be served by its older copies (seen here: 25 jobs still "running"). The counts, from _changes, never
        # went back; the documents agree again once internal replication is done.
        for url in cluster.urls:
            async with CouchClient(url) as reader:
                await _wait_for(lambda: _tally(reader.db("jobs-counted")), FINAL)
    finally:
        await first.aclose()
        await second.aclose()


async def _wait_for(read: Any, wanted: dict[str, int], timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (seen := await read()) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{seen} != {wanted}"
        await asyncio.sleep(0.5)
