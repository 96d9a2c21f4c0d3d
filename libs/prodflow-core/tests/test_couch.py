"""The CouchDB client against a real CouchDB-API server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prodflow_core.couch import (
    Change,
    ChangesFollower,
    DesignDocument,
    DocumentConflict,
    DocumentNotFound,
    View,
    sync_design_documents,
)
from prodflow_core.couch.database import looks_like_seq
from prodflow_core.jobdocs import prepare_job_database
from prodflow_core.testing import MakeDb

pytestmark = [pytest.mark.integration, pytest.mark.both_couch]


async def test_bulk_insert_of_ten_thousand_docs(fresh_db: MakeDb) -> None:
    db = await fresh_db("bulk")
    docs = [{"_id": f"job:{i:05d}", "type": "job", "n": i} for i in range(10_000)]
    results = await db.bulk_docs(docs, chunk_size=2500)
    assert len(results) == 10_000 and all(r.ok for r in results)
    assert (await db.info())["doc_count"] == 10_000
    again = await db.bulk_docs([{"_id": "job:00042", "n": 0}])
    assert again[0].error == "conflict"


async def test_each_bulk_result_belongs_to_its_document_when_some_conflict(fresh_db: MakeDb) -> None:
    """Each result is the one of its document (matched by id: PouchDB Server on disk answers out of order)."""
    db = await fresh_db("bulk-order")
    docs = [{"_id": f"job:{i:02d}", "v": 0} for i in range(40)]
    await db.bulk_docs(docs)
    stale = {f"job:{i:02d}" for i in range(0, 40, 3)}
    batch = [{**doc, "_rev": "1-0" if doc["_id"] in stale else doc["_rev"], "v": 1} for doc in reversed(docs)]
    batch.append({"v": "no id"})
    results = await db.bulk_docs(batch)
    assert [result.id for result in results[:-1]] == [doc["_id"] for doc in batch[:-1]]
    assert {result.id for result in results if result.error == "conflict"} == stale
    stored = await db.get_many([doc["_id"] for doc in docs])
    for doc, result in zip(batch[:-1], results, strict=False):
        if result.ok:
            assert doc["_rev"] == result.rev == stored[doc["_id"]]["_rev"]
    assert results[-1].ok and batch[-1]["_rev"] == (await db.get(results[-1].id))["_rev"]


async def test_get_many_returns_the_existing_documents_by_id(fresh_db: MakeDb) -> None:
    db = await fresh_db("get-many")
    await db.bulk_docs([{"_id": f"d{i}", "n": i} for i in range(4)])
    gone = await db.get("d3")
    await db.delete("d3", gone["_rev"])
    found = await db.get_many(["d2", "d0", "missing", "d3", "d0"])  # a deleted one, a missing one, one twice
    assert sorted(found) == ["d0", "d2"]
    assert found["d2"]["n"] == 2 and found["d2"]["_rev"] == (await db.get("d2"))["_rev"]
    assert "_revisions" not in found["d2"] and await db.get_many([]) == {}


async def test_put_with_stale_rev_is_a_typed_conflict(fresh_db: MakeDb) -> None:
    db = await fresh_db("rev")
    doc = {"_id": "job:a", "status": "waiting"}
    first_rev = await db.put(doc)
    stale = {"_id": "job:a", "_rev": first_rev, "status": "running"}
    await db.put(doc | {"status": "submitted"})
    with pytest.raises(DocumentConflict):
        await db.put(stale)
    with pytest.raises(DocumentNotFound):
        await db.get("job:missing")


async def test_update_rereads_and_reapplies_on_conflict(fresh_db: MakeDb) -> None:
    db = await fresh_db("upd")
    await db.put({"_id": "c", "n": 0})

    async def bump() -> None:
        await db.update("c", lambda d: d | {"n": d["n"] + 1})

    await asyncio.gather(*(bump() for _ in range(10)))
    assert (await db.get("c"))["n"] == 10


async def test_a_design_document_can_keep_out_of_background_indexing(fresh_db: MakeDb) -> None:
    db = await fresh_db("autoupdate")
    view = {"v": View("function(doc){ emit(doc._id, 1); }")}
    assert await sync_design_documents(db, [DesignDocument("check", view, autoupdate=False)]) == ["_design/check"]
    assert (await db.get("_design/check"))["autoupdate"] is False  # CouchDB 3's background indexer skips it
    assert await sync_design_documents(db, [DesignDocument("check", view, autoupdate=False)]) == []
    assert await sync_design_documents(db, [DesignDocument("check", view)]) == ["_design/check"]
    assert "autoupdate" not in await db.get("_design/check")


async def test_preparing_a_job_database_drops_the_retired_design_documents(fresh_db: MakeDb) -> None:
    db = await fresh_db("retired")
    view = {"v": View("function(doc){ emit(doc._id, 1); }")}
    retired = [DesignDocument(name, view) for name in ("jobs", "submitter", "monitor")]
    await sync_design_documents(db, retired)
    await db.view("jobs", "v", limit=1)  # an index built, which the view cleanup removes afterwards
    await prepare_job_database(db, [DesignDocument("check", view)])
    assert [await db.get_or_none(design.id) for design in retired] == [None, None, None]
    assert await db.get_or_none("_design/check") is not None  # the designs asked for are synced, others kept
    await prepare_job_database(db, [DesignDocument("check", view)])  # nothing left to drop: no error
    assert await db.get_or_none("_design/check") is not None


async def test_view_with_count_reduce_and_group_level(fresh_db: MakeDb) -> None:
    db = await fresh_db("view")
    ddoc = DesignDocument(
        "jobs",
        {"by_label_status": View("function(doc){ if(doc.type==='job') emit([doc.label, doc.status], 1); }", "_count")},
    )
    assert await sync_design_documents(db, [ddoc]) == ["_design/jobs"]
    assert await sync_design_documents(db, [ddoc]) == []  # idempotent: unchanged documents are not rewritten
    docs = [
        {
            "_id": f"j{i}",
            "type": "job",
            "label": "L1" if i % 3 else "L2",
            "status": "completed" if i % 2 else "waiting",
        }
        for i in range(300)
    ]
    await db.bulk_docs(docs)
    grouped = await db.view("jobs", "by_label_status", group=True)
    counts = {tuple(r["key"]): r["value"] for r in grouped.rows}
    assert sum(counts.values()) == 300
    assert counts[("L2", "waiting")] == sum(1 for i in range(300) if i % 3 == 0 and i % 2 == 0)
    per_label = await db.view("jobs", "by_label_status", group_level=1)
    assert {tuple(r["key"]): r["value"] for r in per_label.rows} == {("L1",): 200, ("L2",): 100}
    ranged = await db.view("jobs", "by_label_status", startkey=["L1"], endkey=["L1", {}], reduce=True)
    assert ranged.rows[0]["value"] == 200


async def test_find_with_index(fresh_db: MakeDb) -> None:
    db = await fresh_db("find")
    await db.create_index(["label", "run"], name="label-run")
    await db.bulk_docs([{"_id": f"j{i}", "label": "A" if i < 5 else "B", "run": i} for i in range(10)])
    docs, _ = await db.find({"label": "B", "run": {"$gt": 6}}, sort=[{"label": "asc"}, {"run": "asc"}])
    assert [d["run"] for d in docs] == [7, 8, 9]


async def test_follower_killed_mid_stream_resumes_from_checkpoint(fresh_db: MakeDb) -> None:
    db = await fresh_db("chg")
    await db.bulk_docs([{"_id": f"e{i:03d}"} for i in range(50)])
    seen: list[str] = []
    crash_after = 2

    async def handle(batch: list[Change]) -> None:
        nonlocal crash_after
        if crash_after == 0:
            raise KeyboardInterrupt  # the process dies while handling: this batch was not checkpointed
        crash_after -= 1
        seen.extend(c.id for c in batch)

    follower = ChangesFollower(db, "t", handle, batch_size=10, longpoll_s=0.5)
    with pytest.raises(KeyboardInterrupt):
        for _ in range(5):
            await follower.poll_once(wait=False)
    # Two handled batches. Which documents they hold is the server's business: a CouchDB 3 database of several
    # shards interleaves their feeds (no single order of _changes), PouchDB Server keeps the order of the writes.
    assert len(seen) == len(set(seen)) == 20

    await db.bulk_docs([{"_id": f"e{i:03d}"} for i in range(50, 60)])
    restarted = ChangesFollower(db, "t", handle, batch_size=10, longpoll_s=0.5)
    crash_after = 100
    while await restarted.poll_once(wait=False):
        pass
    assert sorted(seen) == [f"e{i:03d}" for i in range(60)]  # nothing missed, nothing seen twice after a handled batch


@pytest.mark.parametrize("stream", [False, True], ids=["batches", "stream"])
async def test_handled_to_now_ends_a_long_poll_and_returns_once_earlier_writes_are_handled(
    fresh_db: MakeDb, stream: bool
) -> None:
    db = await fresh_db("to-now")
    seen: list[str] = []
    handled = asyncio.Event()

    async def handle(batch: list[Change]) -> None:
        await handled.wait()  # nothing is handled until the test says so
        seen.extend(c.id for c in batch)

    follower = ChangesFollower(db, "to-now", handle, longpoll_s=60, stream=stream)
    stop = asyncio.Event()
    running = asyncio.create_task(follower.run(stop))
    try:
        handled.set()
        await asyncio.wait_for(follower.caught_up.wait(), 10)  # now in a long poll of up to 60 s
        assert await follower.handled_to_now(10)  # nothing written: a fresh read comes back empty at once
        handled.clear()
        await db.bulk_docs([{"_id": f"w{i}"} for i in range(3)])
        assert not await follower.handled_to_now(0.5)  # the batch is not handled yet
        handled.set()
        started = asyncio.get_running_loop().time()
        assert await follower.handled_to_now(10)
        assert sorted(seen) == ["w0", "w1", "w2"]
        assert asyncio.get_running_loop().time() - started < 5  # never the long poll's 60 s
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_a_settling_follower_reads_a_burst_of_writes_in_few_reads_and_still_answers_handled_to_now(
    fresh_db: MakeDb,
) -> None:
    db = await fresh_db("settle")
    batches: list[list[str]] = []

    async def handle(batch: list[Change]) -> None:
        batches.append([c.id for c in batch])

    follower = ChangesFollower(db, "settle", handle, longpoll_s=60, settle_s=0.5)
    stop = asyncio.Event()
    running = asyncio.create_task(follower.run(stop))
    try:
        await asyncio.wait_for(follower.caught_up.wait(), 10)
        for i in range(10):  # one write every 20 ms: a follower without the pause reads about one change per read
            await db.bulk_docs([{"_id": f"b{i}"}])
            await asyncio.sleep(0.02)
        started = asyncio.get_running_loop().time()
        assert await follower.handled_to_now(10)  # a reader that needs it now does not wait out the pause
        assert asyncio.get_running_loop().time() - started < 0.5
        assert sorted(c for batch in batches for c in batch) == [f"b{i}" for i in range(10)]
        assert len(batches) <= 3, batches
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_a_streaming_follower_reads_on_one_request_and_comes_back_after_a_broken_feed(
    fresh_db: MakeDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await fresh_db("stream")
    seen: list[str] = []
    handled = asyncio.Event()

    async def handle(batch: list[Change]) -> None:
        seen.extend(c.id for c in batch)
        handled.set()

    requests: list[str] = []
    changes = db.changes

    async def counted_changes(**kwargs: Any) -> Any:
        requests.append(str(kwargs.get("since")))
        return await changes(**kwargs)

    monkeypatch.setattr(db, "changes", counted_changes)
    follower = ChangesFollower(db, "stream", handle, longpoll_s=1, retry_s=0.1, stream=True)
    stop = asyncio.Event()
    running = asyncio.create_task(follower.run(stop))

    async def seen_all(ids: list[str]) -> None:
        async with asyncio.timeout(10):
            while not set(ids) <= set(seen):
                handled.clear()
                await handled.wait()

    try:
        await asyncio.wait_for(follower.caught_up.wait(), 10)
        await asyncio.sleep(0.2)
        read_before = len(requests)
        burst = [f"b{i:02d}" for i in range(12)]
        await db.bulk_docs([{"_id": doc_id} for doc_id in burst])
        await seen_all(burst)
        ids = [f"s{i}" for i in range(6)]
        for doc_id in ids:  # a write every 10 ms: one request each for a follower reading in batches
            await db.bulk_docs([{"_id": doc_id, "pad": "x" * (3_000_000 if doc_id == "s3" else 0)}])
            await asyncio.sleep(0.01)  # s3 is one line of 3 MB on the feed: aiohttp's line reader refused it
        await seen_all(ids)
        # writes in their order (one write's rows in the server's), and no request but the feed
        assert sorted(seen[:12]) == burst and seen[12:] == ids and len(requests) == read_before
        assert await follower.handled_to_now(10) and len(requests) > read_before  # answered by a read
        await db.client.aclose()  # the feed breaks: the follower reads again after retry_s, and follows on
        await db.bulk_docs([{"_id": "after"}])
        await seen_all(["after"])
        assert seen.count("after") == 1
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_follower_starting_now_keeps_its_start_and_idle_polls_store_nothing(fresh_db: MakeDb) -> None:
    # Whether to store a checkpoint used to be decided by comparing sequences: on CouchDB 3 (GET /db and _changes
    # write one position differently) a consumer starting "now" stored its start, on PouchDB Server it did not and
    # missed what was written while it was down.
    db = await fresh_db("now")
    await db.bulk_docs([{"_id": f"old{i}"} for i in range(3)])
    seen: list[str] = []

    async def handle(batch: list[Change]) -> None:
        seen.extend(c.id for c in batch)

    follower = ChangesFollower(db, "n", handle, start="now")
    assert await follower.poll_once(wait=False) == 0
    stored = await db.get_local("checkpoint-n")
    assert stored is not None
    for _ in range(3):  # nothing new: the checkpoint is not rewritten
        assert await follower.poll_once(wait=False) == 0
    assert await db.get_local("checkpoint-n") == stored

    await db.put({"_id": "while-down"})  # the follower is gone; it comes back later
    restarted = ChangesFollower(db, "n", handle, start="now")
    while await restarted.poll_once(wait=False):
        pass
    assert seen == ["while-down"]


async def test_one_shard_database_keeps_the_order_of_writes(fresh_db: MakeDb) -> None:
    # The event stream is created with shards=1 (prodflow_core.service): with CouchDB 3's default q=2 the
    # changes of two shards come interleaved, not in the order they were written.
    db = await fresh_db("order", shards=1)
    written = [f"evt-{i:03d}-{'ab'[i % 2]}" for i in range(40)]
    for doc_id in written:
        await db.put({"_id": doc_id})
    assert [r["id"] for r in (await db.changes(since="0")).results] == written
    if "cluster" in (info := await db.info()):  # CouchDB 3 says how it was created
        assert info["cluster"]["q"] == 1


async def test_sequences_are_opaque_resume_points(fresh_db: MakeDb) -> None:
    # PouchDB Server: integers; CouchDB 3: "N-g1AAAA..." strings, and one position is written differently by
    # GET /db (update_seq) and by _changes (last_seq). Kept as text, never compared or computed with.
    db = await fresh_db("seq")
    start = await db.update_seq()
    await db.bulk_docs([{"_id": f"d{i}"} for i in range(5)])
    first = await db.changes(since=start, limit=3)
    rest = await db.changes(since=first.last_seq)
    seqs = [start, first.last_seq, rest.last_seq, *(Change.from_row(r).seq for r in first.results + rest.results)]
    assert all(isinstance(seq, str) and looks_like_seq(seq) for seq in seqs), seqs
    assert sorted(r["id"] for r in first.results + rest.results) == [f"d{i}" for i in range(5)]
    assert (await db.changes(since=rest.last_seq)).results == []
    assert len((await db.changes(since="0")).results) == 5  # "0" is a sequence on both servers


async def test_longpoll_returns_when_a_change_arrives(fresh_db: MakeDb) -> None:
    db = await fresh_db("lp")
    since = await db.update_seq()

    async def later() -> None:
        await asyncio.sleep(0.3)
        await db.put({"_id": "late"})

    writer = asyncio.create_task(later())
    batch = await db.changes(since=since, longpoll_s=10)
    await writer
    assert [r["id"] for r in batch.results] == ["late"]


async def test_longpoll_without_changes_is_bounded_by_the_client(fresh_db: MakeDb) -> None:
    # CouchDB 3 answers after `timeout` ms; PouchDB Server holds on, and the client's own bound ends the wait.
    db = await fresh_db("lpq")
    since = await db.update_seq()
    batch = await asyncio.wait_for(db.changes(since=since, longpoll_s=0.5), timeout=15)
    assert batch.results == []
    # The position it answers with (CouchDB 3: a new string for the same place) resumes exactly there.
    await db.put({"_id": "after"})
    assert [r["id"] for r in (await db.changes(since=batch.last_seq)).results] == ["after"]


async def test_a_stopped_follower_leaves_its_long_poll_at_once_and_loses_nothing(fresh_db: MakeDb) -> None:
    # A service stopping used to sit out a follower's long poll (up to its timeout; on PouchDB Server until a
    # change came), then its grace period: seconds at every restart.
    db = await fresh_db("stop")
    seen: list[str] = []

    async def handle(batch: list[Change]) -> None:
        seen.extend(c.id for c in batch)

    stop = asyncio.Event()
    follower = ChangesFollower(db, "s", handle, longpoll_s=60.0)
    running = asyncio.create_task(follower.run(stop))
    await asyncio.wait_for(follower.caught_up.wait(), 10)
    await asyncio.sleep(0.3)  # in its long poll now
    stop.set()
    await asyncio.wait_for(running, 5)  # not the 60-s poll

    await db.put({"_id": "after-stop"})
    again = ChangesFollower(db, "s", handle)
    while await again.poll_once(wait=False):
        pass
    assert seen == ["after-stop"]
