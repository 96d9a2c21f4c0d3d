"""Short reads straight on sqlite3 beside the async engine: what they see, and when they go the async way."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prodflow_core.counts import JobCounter, LedgerRange, ledger_keys
from prodflow_core.counts.pages import ledger_query
from prodflow_core.sql import make_engine
from prodflow_core.sqlite_reads import DirectReads, direct_reads, fetch_rows
from prodflow_core.testing_sql import counts_engine
from sqlalchemy.ext.asyncio import AsyncEngine

RUNNING = LedgerRange((("experiment", "e"), ("label", "L"), ("status", "running")))


def _job(run: int, status: str = "running") -> tuple[str, dict[str, object]]:
    doc_id = f"job:L:M:{run}:0:p1"
    return doc_id, {"_id": doc_id, "_rev": "1-x", "type": "job", "experiment": "e", "label": "L", "module": "M",
                    "status": status, "site": "s", "campaign_id": "c", "events": 1}  # fmt: skip


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with counts_engine(f"sqlite:///{tmp_path / 'reads.sqlite'}") as made:
        yield made


async def test_a_direct_read_sees_what_the_engine_committed_just_before(engine: AsyncEngine) -> None:
    assert direct_reads(engine) is not None
    counter = JobCounter(engine, owner="reads")
    await counter.apply("db", [_job(run) for run in range(3)])
    assert len(await ledger_keys(engine, "db", RUNNING, None, 10)) == 3
    await counter.apply("db", [_job(0, "completed"), _job(7)])  # committed through the engine
    keys = await ledger_keys(engine, "db", RUNNING, None, 10)
    assert [key[-1] for key in keys] == ["job:L:M:1:0:p1", "job:L:M:2:0:p1", "job:L:M:7:0:p1"]


async def test_a_commit_through_the_engine_is_seen_even_where_a_half_read_statement_held_a_snapshot(
    engine: AsyncEngine,
) -> None:
    counter = JobCounter(engine, owner="reads")
    await counter.apply("db", [_job(run) for run in range(3)])
    reader = direct_reads(engine)
    assert reader is not None
    held = reader._connect().execute("SELECT doc_id FROM counted_job")
    assert held.fetchone() is not None  # half read: its statement keeps the snapshot of 3 running jobs
    await counter.apply("db", [_job(0, "completed")])
    keys = await ledger_keys(engine, "db", RUNNING, None, 10)
    assert [key[-1] for key in keys] == ["job:L:M:1:0:p1", "job:L:M:2:0:p1"]


async def test_a_read_that_fails_here_goes_the_async_way(engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    await JobCounter(engine, owner="reads").apply("db", [_job(run) for run in range(2)])

    def locked(self: DirectReads) -> sqlite3.Connection:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(DirectReads, "_connect", locked)
    rows = await fetch_rows(engine, *ledger_query("db", RUNNING, None, 10))
    assert [row[-1] for row in rows] == ["job:L:M:0:0:p1", "job:L:M:1:0:p1"]


async def test_in_memory_and_other_databases_always_go_the_async_way(postgres_url: str) -> None:
    for url in ("sqlite:///:memory:", postgres_url):
        made = make_engine(url)
        try:
            assert direct_reads(made) is None
        finally:
            await made.dispose()
