"""Compaction, view cleanup and the size metrics of the job databases, on PouchDB Server and on CouchDB 3.5.

What each server reports differs (``prodflow_core.couch.compaction``): CouchDB 3 gives file and active sizes of a
database and of each view index and compacts in the background; PouchDB Server (in memory here) gives no size
at all and no view compaction, and compacts within the ``_compact`` request. Each test says what it expects of both.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prodflow_core.couch import CouchClient, CouchDatabase, DesignDocument, View, sync_design_documents
from prodflow_core.couch.compaction import StoreReading, StoreSizes, read_stores, store_sizes, view_cleanup
from prodflow_core.couch.members import add_to_security, ensure_user
from prodflow_core.credentials import split_userinfo
from prodflow_core.testing import serving
from prodflow_monitor.app import create_app
from prodflow_monitor.maintenance import CompactionPolicy, Maintenance, runs_maintenance
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.settings import MonitorSettings

pytestmark = [pytest.mark.timeout(120)]

LABEL = "2026-12_Compact_v1"
MIN_BYTES = 256 * 1024
POLICY = CompactionPolicy(fragmentation=0.5, min_bytes=MIN_BYTES)


# --- the policy, on the figures each server reports (no server needed) ---


def test_couchdb3_sizes_give_a_fragmentation() -> None:
    sizes = store_sizes({"sizes": {"file": 2_556_334, "external": 43_503, "active": 204_628}, "compact_running": False})
    assert sizes == StoreSizes(file=2_556_334, active=204_628, compact_running=False)
    assert sizes.fragmentation == pytest.approx(1 - 204_628 / 2_556_334)
    assert POLICY.reason(sizes) is not None


def test_pouchdb_server_figures_are_unknown_not_zero() -> None:
    in_memory = store_sizes({"doc_count": 201, "update_seq": 4201, "adapter": "memory"})
    leveldb = store_sizes({"doc_count": 201, "adapter": "leveldb", "disk_size": 2_346_362})
    assert in_memory == StoreSizes(file=None, active=None, compact_running=None)
    assert leveldb == StoreSizes(file=2_346_362, active=None, compact_running=None)
    assert in_memory.fragmentation is None and leveldb.fragmentation is None
    # Fragmentation unknown: written since the last compaction decides, and min_bytes where the file size is known.
    assert POLICY.reason(in_memory, written_since=True) is not None
    assert POLICY.reason(in_memory, written_since=False) is None
    assert POLICY.reason(store_sizes({"disk_size": 1000}), written_since=True) is None


def test_no_compaction_while_one_runs_below_the_minimum_or_below_the_threshold() -> None:
    assert POLICY.reason(StoreSizes(file=10 * MIN_BYTES, active=MIN_BYTES, compact_running=True)) is None
    assert POLICY.reason(StoreSizes(file=MIN_BYTES - 1, active=1, compact_running=False)) is None
    assert POLICY.reason(StoreSizes(file=10 * MIN_BYTES, active=6 * MIN_BYTES, compact_running=False)) is None
    assert POLICY.reason(StoreSizes(file=10 * MIN_BYTES, active=5 * MIN_BYTES, compact_running=False)) is not None


def test_only_replica_0_driving_job_state_runs_maintenance() -> None:
    assert runs_maintenance(MonitorSettings(replicas=2, replica_index=0))
    assert not runs_maintenance(MonitorSettings(replicas=2, replica_index=1))
    assert not runs_maintenance(MonitorSettings(run_loop=False))
    assert not runs_maintenance(MonitorSettings(maintenance_s=0))


# --- on both servers ---


@pytest.fixture
def settings(monitor_settings: MonitorSettings, couch_target: str) -> MonitorSettings:
    return monitor_settings.model_copy(
        update={"couchdb_url": couch_target, "run_loop": False, "compact_min_bytes": MIN_BYTES}
    )


@pytest.fixture
def app(settings: MonitorSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def app_url(app: FastAPI) -> Iterator[str]:
    with serving(app) as url:  # the lifespan creates the job databases and their design documents
        yield url


OUTPUTS_DESIGN = DesignDocument(
    "outputs", {"by_label": View("function (doc) { if (doc.type === 'job') { emit(doc.label, doc.outputs); } }")}
)
"""The test's own view index in a job database (the services keep none there but the monitor's check, which is
built only when an admin asks): it holds ~1 kB per job, rewritten each round."""


async def _fragment(db: CouchDatabase, kit: Any, *, jobs: int, rounds: int) -> list[dict[str, Any]]:
    """Write ``jobs`` job documents and rewrite each ``rounds`` times (dead revisions), building the view index
    of :data:`OUTPUTS_DESIGN` after each round (an index file grows the same way)."""
    await sync_design_documents(db, [OUTPUTS_DESIGN])
    docs = [kit.job_doc(LABEL, "ModA", 1000 + i, "site-a") for i in range(jobs)]
    for n in range(rounds):
        for doc in docs:
            doc["history"].append({"status": "waiting", "at": f"2026-12-01T00:00:{n:02d}Z", "reason": "x" * 200})
            doc["outputs"] = [
                {"name": f"{k}.root", "url": f"file:///se/{n}/{'y' * 150}/{k}.root", "size": n, "adler32": "0"}
                for k in range(5)
            ]
        results = await db.bulk_docs(docs)
        assert all(r.ok for r in results)
        await db.view("outputs", "by_label", limit=1)
    return docs


def _gauge(metrics: str, name: str, database: str, design: str = "") -> float | None:
    labels = f'database="{re.escape(database)}",design="{re.escape(design)}"'
    found = re.search(rf"^{name}{{{labels}}} (\S+)$", metrics, re.M)
    return float(found.group(1)) if found else None


async def _metrics(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


async def _compaction_finished(db: CouchDatabase, before: StoreReading) -> list[StoreReading]:
    """The readings once no store of ``db`` is compacting and the database file changed (CouchDB 3)."""
    deadline = time.monotonic() + 60
    while True:
        readings = await read_stores(db)
        if not any(r.sizes.compact_running for r in readings) and readings[0].sizes.file != before.sizes.file:
            return readings
        assert time.monotonic() < deadline, f"compaction of {db.name} did not finish: {readings}"
        await asyncio.sleep(0.2)


def _by_target(readings: list[StoreReading]) -> dict[str, StoreReading]:
    return {r.target: r for r in readings}


@pytest.mark.integration
@pytest.mark.both_couch
async def test_a_fragmented_database_is_compacted_and_shrinks(
    couch: CouchClient, settings: MonitorSettings, app: FastAPI, app_url: str, kit: Any
) -> None:
    production, processing = (couch.db(name) for name in settings.databases)
    docs = await _fragment(production, kit, jobs=200, rounds=12)
    old_rev = docs[0]["_rev"]
    await production.put(docs[0])  # old_rev is now a dead revision
    before = _by_target(await read_stores(production))
    scraped = await _metrics(app_url)
    maintenance = Maintenance.from_settings([production, processing], settings, app.state.metrics)

    started = {(r.database, r.target) for r in await maintenance.run_pass()}
    await maintenance.wait_idle()

    assert (production.name, "database") in started
    after_metrics = await _metrics(app_url)
    assert f'prodflow_monitor_compactions_total{{database="{production.name}",target="database"}} 1.0' in after_metrics
    fragmentation = before["database"].sizes.fragmentation
    if fragmentation is None:  # PouchDB Server: no size to show, nothing shown as 0; no view index figures
        assert before["database"].sizes == StoreSizes(None, None, None)
        assert list(before) == ["database"]
        assert _gauge(scraped, "prodflow_couch_fragmentation_ratio", production.name) is None
        assert _gauge(scraped, "prodflow_couch_file_bytes", production.name) is None
        assert "prodflow_couch_file_bytes{" not in after_metrics
        assert (processing.name, "database") in started  # written (its design documents), never compacted
    else:  # CouchDB 3: the file shrinks and the gauge follows; the small database is left alone
        assert fragmentation >= settings.compact_fragmentation
        assert _gauge(scraped, "prodflow_couch_fragmentation_ratio", production.name) == pytest.approx(
            fragmentation, abs=0.05
        )
        after = _by_target(await _compaction_finished(production, before["database"]))
        assert after["database"].sizes.file is not None and before["database"].sizes.file is not None
        assert after["database"].sizes.file < before["database"].sizes.file / 2
        shown = _gauge(await _metrics(app_url), "prodflow_couch_fragmentation_ratio", production.name)
        assert shown is not None and shown < settings.compact_fragmentation
        assert (processing.name, "database") not in started
        index = before[OUTPUTS_DESIGN.id].sizes
        assert index.file is not None and index.file >= MIN_BYTES and (index.fragmentation or 0) >= 0.5
        assert (production.name, OUTPUTS_DESIGN.id) in started
        index_after = after[OUTPUTS_DESIGN.id].sizes
        assert index_after.file is not None and index_after.file < index.file
    revs = await couch.request("GET", f"{production.name}/{docs[0]['_id']}", params={"revs_info": True})
    status = {info["rev"]: info["status"] for info in revs["_revs_info"]}
    assert status[old_rev] == "missing"  # the dead revisions' bodies are gone, on either server
    # Nothing more to do: the next pass starts no compaction of the database (done, or unchanged since).
    assert (production.name, "database") not in {(r.database, r.target) for r in await maintenance.run_pass()}
    await maintenance.aclose()


@pytest.mark.integration
@pytest.mark.both_couch
async def test_a_small_or_unchanged_database_is_left_alone(
    couch: CouchClient, settings: MonitorSettings, app: FastAPI, app_url: str, kit: Any
) -> None:
    production, _ = (couch.db(name) for name in settings.databases)
    await _fragment(production, kit, jobs=10, rounds=5)
    maintenance = Maintenance.from_settings([production], settings, app.state.metrics)
    sizes = (await read_stores(production))[0].sizes
    if sizes.file is not None:  # CouchDB 3: fragmented, but below the minimum size
        assert sizes.file < MIN_BYTES and (sizes.fragmentation or 0) >= 0.5
        assert await maintenance.run_pass() == []
    else:  # PouchDB Server: once compacted and not written since, it is left alone
        assert [r.target for r in await maintenance.run_pass()] == ["database"]
        await maintenance.wait_idle()
        assert await maintenance.run_pass() == []
    await maintenance.aclose()


@pytest.mark.integration
@pytest.mark.both_couch
async def test_view_cleanup_after_a_design_document_changed(couch: CouchClient, fresh_db: Any) -> None:
    db: CouchDatabase = await fresh_db("cleanup")
    await db.bulk_docs([{"_id": f"d{i}", "n": i} for i in range(50)])
    old = DesignDocument("d", {"v": View("function (doc) { emit(doc.n, null); }")})
    new = DesignDocument("d", {"v": View("function (doc) { emit(-doc.n, null); }")})
    await sync_design_documents(db, [old])
    assert (await db.view("d", "v", limit=1)).rows[0]["key"] == 0
    assert await sync_design_documents(db, [new]) == ["_design/d"]
    await view_cleanup(db)  # both servers accept it; the new version answers
    assert (await db.view("d", "v", limit=1)).rows[0]["key"] == -49


@pytest.mark.integration
async def test_the_service_runs_maintenance_passes_on_replica_0(monitor_settings: MonitorSettings, kit: Any) -> None:
    """The wiring: replica 0 driving job state runs a pass every maintenance_s (the session's server: its
    databases, written by the start-up and never compacted, are compacted on PouchDB Server; on CouchDB 3 they
    are below the minimum and the counter stays absent)."""
    settings = monitor_settings.model_copy(update={"maintenance_s": 0.3})
    with serving(create_app(settings)) as url:
        async with CouchClient(settings.couchdb_url) as couch:
            reported = (await read_stores(couch.db(settings.databases[0])))[0].sizes
        line = f'prodflow_monitor_compactions_total{{database="{settings.databases[0]}",target="database"}} 1.0'

        async def compacted() -> bool:
            return line in await _metrics(url)

        if reported.fragmentation is None:
            await kit.wait_until(compacted, 20, "a maintenance pass compacting the new database")
        else:
            await asyncio.sleep(1.0)
            assert "prodflow_monitor_compactions_total{" not in await _metrics(url)
    # Replica 1 on new databases (which replica 0 would compact on PouchDB Server) leaves them alone.
    fresh = tuple(f"{name}-r1" for name in settings.databases)
    replica_1 = settings.model_copy(update={"replicas": 2, "replica_index": 1, "databases": fresh})
    with serving(create_app(replica_1)) as url:
        await asyncio.sleep(1.0)
        assert "prodflow_monitor_compactions_total{" not in await _metrics(url)


@pytest.mark.integration
async def test_a_database_admin_account_may_compact_on_couchdb3(couchdb3_url: str, kit: Any) -> None:
    """With ``--member-accounts`` the monitor is an admin of the job databases, not a server admin."""
    bare, _, _ = split_userinfo(couchdb3_url)
    name = f"data-production-{uuid.uuid4().hex[:10]}"
    async with CouchClient(couchdb3_url) as admin:
        await admin.db(name).ensure()
        await ensure_user(admin, "prodflow-monitor-test", "secret-of-the-test")
        await add_to_security(admin, name, "prodflow-monitor-test", section="admins")
        try:
            async with CouchClient(bare, auth=("prodflow-monitor-test", "secret-of-the-test")) as monitor:
                db = monitor.db(name)
                await _fragment(db, kit, jobs=50, rounds=8)
                maintenance = Maintenance([db], CompactionPolicy(fragmentation=0.5, min_bytes=0), MonitorMetrics())
                before = (await read_stores(db))[0]
                started = {r.target for r in await maintenance.run_pass()}
                assert started == {"database", OUTPUTS_DESIGN.id}
                after = (await _compaction_finished(db, before))[0]
                assert after.sizes.file is not None and before.sizes.file is not None
                assert after.sizes.file < before.sizes.file
        finally:
            await admin.db(name).drop()
