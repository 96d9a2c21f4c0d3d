"""Kept job counts: exact under re-delivery, stale revisions, deletions, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prodflow_core.counts import (
    CountsCheckpoints,
    JobCounter,
    campaign_counts,
    contribution_of,
    database_status_counts,
    label_counts,
    label_home,
    label_jobs,
    label_status_counts,
    labels_after,
    module_stats,
    plan_change,
    site_counts,
)
from prodflow_core.testing_sql import counts_engine
from sqlalchemy.ext.asyncio import AsyncEngine


def _job(n: int, status: str = "waiting", rev: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "_id": f"job:L1:ModA:{n}:0:p1",
        "_rev": f"{rev}-abc",
        "type": "job",
        "experiment": "snoplus",
        "label": "L1",
        "module": "ModA",
        "status": status,
        "site": "site-a",
        "campaign_id": "camp-000001",
        "events": 10,
        **extra,
    }


def test_only_job_documents_count() -> None:
    assert contribution_of({"_id": "_design/x", "views": {}}) is None
    part = contribution_of(_job(1, rev=7))
    assert part is not None and part.rev == 7 and part.events == 10


def test_a_move_takes_one_from_the_old_status_and_gives_it_to_the_new() -> None:
    old = contribution_of(_job(1))
    assert old is not None
    change = plan_change("db", {"a": old}, [("a", contribution_of(_job(1, "submitted", rev=2)))])
    assert change.labels[("snoplus", "L1", "ModA", "waiting")] == [-1, -10]
    assert change.labels[("snoplus", "L1", "ModA", "submitted")] == [1, 10]
    assert change.sites[("site-a", "waiting")] == -1 and change.campaigns[("camp-000001", "submitted")] == 1
    assert change.touched_labels == {"L1"}


def test_an_older_revision_or_the_same_count_moves_nothing() -> None:
    held = contribution_of(_job(1, "running", rev=5))
    assert held is not None
    stale = plan_change("db", {"a": held}, [("a", contribution_of(_job(1, "submitted", rev=4)))])
    same = plan_change("db", {"a": held}, [("a", contribution_of(_job(1, "running", rev=6)))])
    for change in (stale, same):
        assert not any(v[0] or v[1] for v in change.labels.values()) and change.touched_labels == set()
    assert [row["rev"] for row in same.ledger_put] == [6]  # the ledger follows the revision


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'counts.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    async with counts_engine(url) as made:
        yield made


async def test_a_labels_jobs_come_from_the_ledger_by_status_and_campaign(engine: AsyncEngine) -> None:
    counter = JobCounter(engine, owner=f"test-{uuid.uuid4().hex[:8]}")
    database = f"db-{uuid.uuid4().hex[:8]}"
    docs = [(f"job:L1:ModA:{n}:0:p1", _job(n, "failed" if n % 3 == 0 else "completed")) for n in range(12)]
    docs += [(f"job:L1:ModA:{n}:0:p2", {**_job(n, campaign_id="camp-000002"), "_id": f"job:L1:ModA:{n}:0:p2"})
             for n in range(3)]  # fmt: skip
    other = {**_job(0, experiment=f"exp-{uuid.uuid4().hex[:8]}"), "_id": "job:L2:ModA:0:0:p1", "label": "L2"}
    await counter.apply(database, [*docs, ("job:L2:ModA:0:0:p1", other)])
    every = await label_jobs(engine, database, "L1")
    assert [doc_id for doc_id, _ in every] == sorted(doc_id for doc_id, _ in docs)
    failed = await label_jobs(engine, database, "L1", ["failed"])
    assert failed == [(f"job:L1:ModA:{n}:0:p1", "failed") for n in sorted([0, 3, 6, 9], key=str)]
    second = await label_jobs(engine, database, "L1", ["waiting", "failed"], campaign_id="camp-000002")
    assert [doc_id for doc_id, _ in second] == [f"job:L1:ModA:{n}:0:p2" for n in range(3)]
    assert await label_jobs(engine, database, "L3") == [] and await label_jobs(engine, "elsewhere", "L1") == []


async def test_counts_are_exact_when_batches_are_handed_over_again(engine: AsyncEngine) -> None:
    counter = JobCounter(engine, owner=f"test-{uuid.uuid4().hex[:8]}")
    database = f"db-{uuid.uuid4().hex[:8]}"
    first = [(f"job:L1:ModA:{n}:0:p1", _job(n)) for n in range(100)]
    await counter.apply(database, first)
    await counter.apply(database, first)  # the same batch after a crash before the checkpoint moved
    moved = [(f"job:L1:ModA:{n}:0:p1", _job(n, "completed", rev=3)) for n in range(40)]
    await counter.apply(database, moved)
    await counter.apply(database, moved)
    await counter.apply(database, [(f"job:L1:ModA:{n}:0:p1", _job(n, "submitted", rev=2)) for n in range(40)])
    await counter.apply(database, [("job:L1:ModA:99:0:p1", None), ("job:L1:ModA:99:0:p1", None)])

    assert await label_status_counts(engine, database, "L1") == {"waiting": 59, "completed": 40}
    assert (await database_status_counts(engine))[database] == {"waiting": 59, "completed": 40}
    stats = module_stats(await label_counts(engine, "L1"), database)
    assert stats == {"ModA": {"completed": {"jobs": 40, "events": 400}, "waiting": {"jobs": 59, "events": 590}}}
    assert (await campaign_counts(engine, "camp-000001"))["completed"] >= 40
    assert (await site_counts(engine, ["site-a"]))["site-a"]["waiting"] >= 59
    assert await label_home(engine, "L1") is not None
    assert await labels_after(engine, database, "snoplus", "", 10) == [("L1", {"waiting": 59, "completed": 40})]
    assert await labels_after(engine, database, "snoplus", "L1", 10) == []
    assert not await labels_after(engine, database, "legend", "", 10)


async def test_rows_that_reach_zero_are_dropped(engine: AsyncEngine) -> None:
    counter = JobCounter(engine, owner="zero")
    database = f"db-{uuid.uuid4().hex[:8]}"
    await counter.apply(database, [("job:L9:ModA:1:0:p1", {**_job(1), "label": "L9"})])
    await counter.apply(database, [("job:L9:ModA:1:0:p1", None)])
    assert await label_counts(engine, "L9") == [] and await label_home(engine, "L9") is None
    assert database not in await database_status_counts(engine)


async def test_the_checkpoint_is_kept_beside_the_counts(engine: AsyncEngine) -> None:
    counter = JobCounter(engine, owner=f"cp-{uuid.uuid4().hex[:8]}")
    store = CountsCheckpoints(counter, "db-a")
    assert await store.load() is None
    await store.save("12-g1AAAA")
    await store.save("13-g1AAAB")
    assert await store.load() == "13-g1AAAB"
    assert await CountsCheckpoints(counter, "db-b").load() is None


def test_deletions_by_archival_are_not_counted_as_gone() -> None:
    from prodflow_core.couch import Change
    from prodflow_core.counts import archival_tombstone, counted_docs

    job = {"_id": "job:L:M:1:0:p1", "_rev": "1-a", "type": "job", "label": "L"}
    changes = [
        Change(seq="1", id="job:L:M:1:0:p1", deleted=False, doc=job),
        Change(seq="2", id="job:L:M:2:0:p1", deleted=True, doc={"_id": "job:L:M:2:0:p1", "_deleted": True}),
        Change(seq="3", id="job:L:M:3:0:p1", deleted=True, doc=archival_tombstone("job:L:M:3:0:p1", "2-c", "L")),
        Change(seq="4", id="job:L:M:4:0:p1", deleted=True, doc=None),
    ]
    assert counted_docs(changes) == [("job:L:M:1:0:p1", job), ("job:L:M:2:0:p1", None), ("job:L:M:4:0:p1", None)]
