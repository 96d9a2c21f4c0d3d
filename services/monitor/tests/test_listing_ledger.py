"""Job listings served by the counts' ledger and one ``_all_docs?keys=`` read: a real CouchDB-API server, real SQL."""

from __future__ import annotations

from typing import Any

import pytest
from prodflow_core.couch import CouchDatabase
from prodflow_core.counts import JobCounter
from prodflow_core.testing import MakeDb
from prodflow_monitor.listing import JobFilter, Page, list_jobs
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def jobs(fresh_db: MakeDb, engine: AsyncEngine, kit: Any) -> CouchDatabase:
    """12 running snoplus jobs of label L (runs 0..11, pass 1 or 2) and 3 legend ones, written and counted."""
    db = await fresh_db("listing")
    docs = [kit.job_doc("L", "M", run, "site-a", pass_number=1 + run % 2) for run in range(12)]
    docs += [kit.job_doc("G", "tier", run, "site-a", experiment="legend") for run in range(3)]
    for doc in docs:
        doc["status"] = "running"
    await db.bulk_docs(docs)
    await _count(engine, db)
    return db


async def _count(engine: AsyncEngine, db: CouchDatabase) -> None:
    """What the monitor's feed does: the ledger takes every document as it is now."""
    rows = (await db.all_docs(include_docs=True)).rows
    await JobCounter(engine, "test").apply(db.name, [(row["id"], row["doc"]) for row in rows])


async def _ids(engine: AsyncEngine, db: CouchDatabase, selection: JobFilter, **kw: Any) -> list[str]:
    page = await list_jobs(engine, [db], selection, kw.pop("experiments", ["snoplus"]), limit=100, **kw)
    return [doc["_id"] for doc in page.items]


async def test_a_document_shows_as_it_is_now_and_only_if_it_still_matches(
    engine: AsyncEngine, jobs: CouchDatabase
) -> None:
    moved = await jobs.get("job:L:M:3:0:p2")
    await jobs.put({**moved, "status": "completed"})  # the ledger has not counted the move yet
    gone = await jobs.get("job:L:M:4:0:p1")
    await jobs.delete(gone["_id"], gone["_rev"])

    running = await _ids(engine, jobs, JobFilter(label="L", status="running"))
    assert len(running) == 10 and "job:L:M:3:0:p2" not in running and "job:L:M:4:0:p1" not in running
    assert await _ids(engine, jobs, JobFilter(status="completed")) == []  # shown once the ledger has it
    await _count(engine, jobs)
    assert await _ids(engine, jobs, JobFilter(status="completed")) == ["job:L:M:3:0:p2"]
    everything = await list_jobs(engine, [jobs], JobFilter(label="L"), ["snoplus"], limit=100)
    assert {doc["status"] for doc in everything.items} == {"running", "completed"}
    assert all(doc["database"] == jobs.name and "history" in doc for doc in everything.items)


async def test_pages_resume_after_the_last_key_and_the_last_page_has_no_cursor(
    engine: AsyncEngine, jobs: CouchDatabase
) -> None:
    seen: list[str] = []
    after = None
    while True:
        page = await list_jobs(engine, [jobs], JobFilter(status="running"), ["snoplus", "legend"], limit=5, after=after)
        seen += [doc["_id"] for doc in page.items]
        if page.next is None:
            break
        after = page.next
    assert len(seen) == len(set(seen)) == 15 and len(page.items) == 5  # 15 = 3 full pages, the last without cursor
    assert seen[:3] == [f"job:G:tier:{run}:0:p1" for run in range(3)]  # experiment by experiment


async def test_filters_off_the_ledger_leave_short_pages_that_go_on(engine: AsyncEngine, jobs: CouchDatabase) -> None:
    pass_two = await _ids(engine, jobs, JobFilter(label="L", pass_number=2))
    assert sorted(pass_two) == sorted(f"job:L:M:{run}:0:p2" for run in range(1, 12, 2))
    one_run = await _ids(engine, jobs, JobFilter(label="L", module="M", run=1))
    assert one_run == ["job:L:M:1:0:p2"]  # not run 10 or 11: the id prefix ends in ':'
    page: Page = await list_jobs(engine, [jobs], JobFilter(label="L", pass_number=1), ["snoplus"], limit=2)
    assert len(page.items) == 2 and page.next is not None


async def test_a_position_never_leads_into_another_experiments_keys(engine: AsyncEngine, jobs: CouchDatabase) -> None:
    page = await list_jobs(engine, [jobs], JobFilter(), ["legend"], limit=2)
    assert page.next is not None and page.next[1][0] == "legend"
    for forged in ((jobs.name, ["snoplus", "running", "job:L:M:0:0:p1"]), ("elsewhere", page.next[1]), "x", [1]):
        with pytest.raises(ValueError, match="does not belong"):
            await list_jobs(engine, [jobs], JobFilter(), ["legend"], limit=2, after=forged)
    rest = await list_jobs(engine, [jobs], JobFilter(), ["legend"], limit=2, after=page.next)
    assert [doc["experiment"] for doc in rest.items] == ["legend"] and rest.next is None


async def test_a_label_read_within_the_callers_experiments_walks_none_of_anothers(
    engine: AsyncEngine, jobs: CouchDatabase
) -> None:
    assert (await list_jobs(engine, [jobs], JobFilter(label="L"), ["legend"], limit=5)) == Page([], None)
    assert len((await list_jobs(engine, [jobs], JobFilter(label="L"), ["snoplus"], limit=100)).items) == 12
