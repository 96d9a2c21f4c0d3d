"""Pages of the counts' ledger: keyset ranges on its indexes, on SQLite and PostgreSQL; the indexes of old ledgers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prodflow_core.counts import (
    JobCounter,
    LedgerRange,
    campaign_counts,
    count_tables,
    database_status_counts,
    jobs_in_statuses,
    keep_listing_indexes,
    known_experiments,
    label_counts,
    label_experiments,
    label_home,
    label_jobs,
    label_sites,
    labels_after,
    ledger_keys,
)
from prodflow_core.counts import tables as counts_tables
from prodflow_core.counts.pages import ledger_query
from prodflow_core.counts.tables import RETIRED_LEDGER_INDEXES
from prodflow_core.sql import create_tables, make_engine
from prodflow_core.testing_sql import counts_engine, reads_of
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

LISTING_INDEXES = {  # every index a page of GET /api/jobs is read from
    "ix_counted_job_experiment_label_status",
    "ix_counted_job_experiment_label_module",
    "ix_counted_job_experiment_status",
    "ix_counted_job_experiment_site",
}


def _job(label: str, module: str, run: int, status: str, experiment: str = "pg-a", site: str = "a") -> Any:
    doc_id = f"job:{label}:{module}:{run}:0:p1"
    doc = {"_id": doc_id, "_rev": "1-x", "type": "job", "experiment": experiment, "label": label,
           "module": module, "status": status, "site": site, "campaign_id": "c", "events": 1}  # fmt: skip
    return doc_id, doc


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = (
        f"sqlite:///{tmp_path / 'pages.sqlite'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    async with counts_engine(url) as made:
        yield made


@pytest.fixture
async def ledger(engine: AsyncEngine) -> str:
    """A database of 2 labels x 2 modules x 30 runs (pg-a; P2 at site b) and 10 pg-b jobs in the ledger.

    Names no other test uses: the PostgreSQL server is shared by the session."""
    database = f"db-{uuid.uuid4().hex[:8]}"
    docs = [
        _job(label, module, run, "running" if run % 3 else "completed", site="b" if label == "P2" else "a")
        for label in ("P1", "P2")
        for module in ("ModA", "ModB")
        for run in range(30)
    ]
    docs += [_job("Q1", "tier", run, "running", experiment="pg-b") for run in range(10)]
    await JobCounter(engine, owner="pages").apply(database, docs)
    return database


async def _walk(engine: AsyncEngine, database: str, part: LedgerRange, size: int) -> list[list[str]]:
    """Every key of ``part``, ``size`` at a time, each page resuming after the last key of the one before."""
    keys: list[list[str]] = []
    while True:
        page = await ledger_keys(engine, database, part, keys[-1] if keys else None, size)
        assert all(part.holds(key) for key in page)
        keys += page
        if len(page) < size:
            return keys


async def test_a_range_is_walked_page_by_page_in_key_order(engine: AsyncEngine, ledger: str) -> None:
    running = await _walk(
        engine, ledger, LedgerRange((("experiment", "pg-a"), ("label", "P1"), ("status", "running"))), 7
    )
    assert len(running) == 40 and running == sorted(running)
    by_label = await _walk(
        engine, ledger, LedgerRange((("experiment", "pg-a"), ("label", "P1")), ("module", "doc_id")), 9
    )
    assert len({key[-1] for key in by_label}) == 60 and by_label == sorted(by_label)
    experiment = await _walk(engine, ledger, LedgerRange((("experiment", "pg-b"),), ("status", "doc_id")), 4)
    assert [key[-1] for key in experiment] == sorted(f"job:Q1:tier:{run}:0:p1" for run in range(10))
    site = await _walk(engine, ledger, LedgerRange((("experiment", "pg-a"), ("site", "b")), ("status", "doc_id")), 8)
    assert len(site) == 60 and {key[-1].split(":")[1] for key in site} == {"P2"}


async def test_checks_off_the_index_and_an_id_prefix(engine: AsyncEngine, ledger: str) -> None:
    module_b = LedgerRange((("experiment", "pg-a"), ("status", "completed")), also=(("module", "ModB"),))
    assert len(await _walk(engine, ledger, module_b, 3)) == 20
    run = LedgerRange((("experiment", "pg-a"), ("label", "P2"), ("module", "ModA")), id_prefix="job:P2:ModA:1:")
    assert [key[-1] for key in await ledger_keys(engine, ledger, run, None, 10)] == ["job:P2:ModA:1:0:p1"]
    p1 = LedgerRange((("experiment", "pg-a"), ("label", "P1")))
    assert await ledger_keys(engine, ledger, p1, None, 5) != []
    assert await ledger_keys(engine, "other-db", p1, None, 5) == []
    assert await ledger_keys(engine, ledger, LedgerRange((("experiment", "pg-b"), ("label", "P1"))), None, 5) == []


@pytest.mark.parametrize(
    ("part", "index"),
    [
        (
            LedgerRange((("experiment", "pg-a"), ("label", "P1"), ("status", "running"))),
            "ix_counted_job_experiment_label_status",
        ),
        (
            LedgerRange((("experiment", "pg-a"), ("label", "P1")), ("module", "doc_id")),
            "ix_counted_job_experiment_label_module",
        ),
        (
            LedgerRange((("experiment", "pg-a"), ("label", "P1"), ("module", "ModA")), id_prefix="job:P1:ModA:1:"),
            "ix_counted_job_experiment_label_module",
        ),
        (LedgerRange((("experiment", "pg-a"),), ("status", "doc_id")), "ix_counted_job_experiment_status"),
        (
            LedgerRange((("experiment", "pg-a"), ("site", "a")), ("status", "doc_id")),
            "ix_counted_job_experiment_site",
        ),
    ],
)
async def test_sqlite_reads_a_page_from_one_index_without_sorting(
    tmp_path: Path, part: LedgerRange, index: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    await create_tables(engine, count_tables())
    await keep_listing_indexes(engine, kept=True)
    after = [*(value for _, value in part.fixed), *("x" for _ in part.order)]
    query, values = ledger_query("d", part, after, 10)
    async with engine.connect() as conn:
        sql = str(query.params(values).compile(conn.engine, compile_kwargs={"literal_binds": True}))
        plan = " ".join(str(row[-1]) for row in (await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all())
    await engine.dispose()
    assert index in plan and "TEMP B-TREE" not in plan, plan
    # the index is entered at the caller's experiment: no other experiment's entry is walked
    assert f"{index} (database=? AND experiment=?" in plan, plan


async def _ledger_indexes(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: {ix["name"] for ix in inspect(sync).get_indexes("counted_job")})


async def test_a_ledger_made_before_the_listing_indexes_gets_them(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for name in LISTING_INDEXES:
            await conn.execute(text(f"DROP INDEX {name}"))
    await create_tables(engine, count_tables())
    await create_tables(engine, count_tables())  # again: nothing to add
    assert await _ledger_indexes(engine) >= LISTING_INDEXES - set(counts_tables.LISTING_INDEXES)
    for _ in range(2):  # again: nothing to add
        await keep_listing_indexes(engine, kept=True)
    assert await _ledger_indexes(engine) >= LISTING_INDEXES


async def test_a_ledger_no_listing_reads_drops_the_listings_own_indexes(engine: AsyncEngine) -> None:
    """The submitter's: what the listings alone read goes (made before, it had them), what it reads stays."""
    for _ in range(2):
        await keep_listing_indexes(engine, kept=False)
        await create_tables(engine, count_tables())  # its next start adds none of them back
    names = await _ledger_indexes(engine)
    assert not names & set(counts_tables.LISTING_INDEXES)
    assert {"ix_counted_job_database_status_id", "ix_counted_job_experiment_label_status"} <= names


async def test_the_retired_label_indexes_not_led_by_the_experiment_are_dropped(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for name in RETIRED_LEDGER_INDEXES:
            await conn.execute(text(f"CREATE INDEX {name} ON counted_job (database, label, doc_id)"))
    await create_tables(engine, count_tables())
    names = await _ledger_indexes(engine)
    assert names >= LISTING_INDEXES and not names & set(RETIRED_LEDGER_INDEXES)


async def test_sqlite_reads_active_jobs_and_a_labels_jobs_from_their_indexes(tmp_path: Path) -> None:
    """Not the database's whole ledger in id order (its primary key), nor the whole ledger: the monitor's resync,
    the submitter's operations and .exactly, an archive's sites read only the jobs they ask for."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    await create_tables(engine, count_tables())
    await JobCounter(engine, "t").apply("d", [_job("P1", "ModA", run, "running") for run in range(3)])
    async with reads_of(engine, "counted_job") as reads:
        assert await jobs_in_statuses(engine, "d", ["running", "submitted"]) == [f"job:P1:ModA:{run}:0:p1"
                                                                                 for run in range(3)]  # fmt: skip
        assert len(await label_jobs(engine, "d", "P1", ["running"])) == 3
        assert await label_sites(engine, "P1") == ["a"]
    plans = await reads.plans()
    await engine.dispose()
    assert "ix_counted_job_database_status_id (database=? AND status=?)" in plans[0], plans
    for plan in plans[1:]:
        assert "ix_counted_job_experiment_label_status (database=? AND experiment=? AND label=?" in plan, plans


async def test_a_label_is_looked_up_only_among_the_callers_experiments(engine: AsyncEngine, ledger: str) -> None:
    assert await label_experiments(engine, "Q1", ["pg-a"]) == []
    assert await label_experiments(engine, "Q1", ["pg-b", "pg-a"]) == ["pg-b"]
    assert await label_experiments(engine, "Q1", None) == ["pg-b"]
    assert await label_experiments(engine, "nope", None) == []


async def test_sqlite_reads_a_labels_and_a_campaigns_counts_from_their_indexes(tmp_path: Path) -> None:
    """A summary, a label's home and experiments, a campaign's counts: not a scan of every label's or campaign's."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    await create_tables(engine, count_tables())
    await JobCounter(engine, "t").apply("d", [_job(label, "ModA", 1, "running") for label in ("P1", "P2")])
    async with reads_of(engine, "label_count") as labels, reads_of(engine, "campaign_count") as campaigns:
        assert len(await label_counts(engine, "P1")) == 1
        assert await label_home(engine, "P1") == ("d", "pg-a")
        assert await label_experiments(engine, "P1", None) == ["pg-a"]
        assert await campaign_counts(engine, "c") == {"running": 2}
    plans = [*await labels.plans(), *await campaigns.plans()]
    await engine.dispose()
    assert len(plans) == 4, plans
    for plan, key in zip(plans, ["label=?"] * 3 + ["campaign_id=?"], strict=True):
        assert "SCAN" not in plan and f"({key}" in plan, plan


async def test_sqlite_reads_labels_from_the_experiment_label_index(tmp_path: Path) -> None:
    """A label lookup (GET /api/jobs?label=) and the label list (GET /api/labels) of a scoped caller."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    await create_tables(engine, count_tables())
    async with reads_of(engine, "label_count") as reads:
        await label_experiments(engine, "P1", ["legend"])
        await labels_after(engine, "d", "legend", "", 100)
    plans = await reads.plans()
    await engine.dispose()
    assert len(plans) == 2 and all("ix_label_count_experiment_label (experiment=?" in plan for plan in plans), plans
    assert "ix_label_count_experiment_label (experiment=? AND label=?)" in plans[0]
    assert "ix_label_count_experiment_label (experiment=? AND label>?)" in plans[1]  # a page from its position


async def test_the_metrics_gauges_and_the_experiments_read_no_label_counts(tmp_path: Path) -> None:
    """``/metrics``' jobs by database and status, and the experiments an admin's job list walks: the kept totals
    per experiment, not every label's counts."""
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    await create_tables(engine, count_tables())
    await JobCounter(engine, "t").apply("d", [_job(label, "ModA", 1, "running") for label in ("P1", "P2")])
    async with reads_of(engine, "label_count") as labels:
        assert await database_status_counts(engine) == {"d": {"running": 2}}
        assert await known_experiments(engine) == ["pg-a"]
    await engine.dispose()
    assert labels.seen == []


async def test_experiment_counts_added_to_counts_made_before_start_from_their_label_counts(engine: AsyncEngine) -> None:
    counter = JobCounter(engine, owner=f"old-{uuid.uuid4().hex[:8]}")
    database = f"db-{uuid.uuid4().hex[:8]}"
    await counter.apply(database, [_job("B1", "ModA", n, "failed" if n % 4 == 0 else "completed") for n in range(20)])
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE experiment_count"))  # counts made before it
    await create_tables(engine, count_tables())
    assert (await database_status_counts(engine))[database] == {"completed": 15, "failed": 5}
    doc_id, doc = _job("B1", "ModA", 0, "completed")
    await counter.apply(database, [(doc_id, {**doc, "_rev": "2-x"})])  # then moved by each batch
    assert (await database_status_counts(engine))[database] == {"completed": 16, "failed": 4}
