"""A cycle asks a journaled backend only about the jobs that changed, and sweeps the rest over ``sweep_s``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from loop_kit import monitor_loop
from prodflow_core.backends import Backend, BackendStatus, LocalBackend, make_backend
from prodflow_core.couch import CouchClient, rev_number
from prodflow_core.jobdocs import backend_job_name
from prodflow_monitor.active import JournalPolling
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.settings import MonitorSettings

pytestmark = pytest.mark.integration

QUEUED, QUICK = 60, 2


@contextlib.asynccontextmanager
async def cancelled_after(backend: Backend, docs: list[dict[str, Any]]) -> AsyncIterator[None]:
    """Cancel the jobs of ``docs`` at ``backend`` when the block ends, however it ends."""
    try:
        yield
    finally:
        await backend.cancel([backend_job_name(d) for d in docs])


async def caught_up(loop: MonitorLoop) -> None:
    """Let the loop's feeds read every change so far."""
    for follower in loop.followers():
        while await follower.poll_once(wait=False):
            pass


def test_sweep_takes_every_job_once_per_sweep_period() -> None:
    polling = JournalPolling(LocalBackend(Path("/nonexistent"), 1), cursor=":0")
    jobs = dict.fromkeys(f"job{i}" for i in range(10))
    taken: list[str] = []
    for second in range(1, 11):  # a cycle each second, sweep_s 10: one job per cycle
        taken += polling.sweep(jobs, now=float(second), gap_s=1.0, sweep_s=10.0)
    assert sorted(taken) == sorted(jobs)
    assert polling.sweep(jobs, now=10.5, gap_s=1.0, sweep_s=10.0) == []  # within the gap: nothing
    assert len(polling.sweep(jobs, now=100.0, gap_s=1.0, sweep_s=10.0)) == len(jobs)  # long pause: all, once


def test_a_round_reaches_every_job_while_the_site_shrinks() -> None:
    """Jobs the journal missed (all ended) are found within one sweep period, though each one found leaves."""
    polling = JournalPolling(LocalBackend(Path("/nonexistent"), 1), cursor=":0")
    jobs = dict.fromkeys(f"job{i}" for i in range(240))
    for second in range(1, 25):  # a cycle every 5 s, sweep_s 120
        for found in polling.sweep(jobs, now=5.0 * second, gap_s=5.0, sweep_s=120.0):
            del jobs[found]
    assert not jobs


@pytest.mark.timeout(120)
async def test_cycle_polls_only_journaled_changes(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    settings = monitor_settings.model_copy(update={"cycle_s": 3600.0, "sweep_s": 36000.0})
    site = kit.local_site("journaled", tmp_path / "work", tmp_path / "out", f"file://{tmp_path / 'se'}")
    site["options"]["max_running"] = QUICK
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    db = couch.db(settings.databases[0])
    docs = [kit.job_doc("Journal_label", "Mod", 1 + i, site["name"]) for i in range(QUICK + QUEUED)]
    async with monitor_loop(couch, settings) as loop, cancelled_after(backend, docs):
        await db.bulk_docs(docs)
        # the first QUICK jobs take the two slots and end after the first cycle; the rest wait behind two long ones
        command = {d["_id"]: ("sleep 2; echo x > out.root" if i < QUICK else "sleep 600") for i, d in enumerate(docs)}
        await kit.submit_jobs(db, backend, docs, tmp_path / "out", lambda d: command[d["_id"]])
        await caught_up(loop)
        first = await loop.cycle()
        assert first.polled == len(docs) and first.transferred == 0, first  # the journal's first read: every job once

        async def quick_ones_ended() -> bool:
            states = await backend.status([backend_job_name(d) for d in docs[:QUICK]])
            return all(s.state == BackendStatus.COMPLETED for s in states.values())

        await kit.wait_until(quick_ones_ended, 30, "the quick jobs' end")
        await asyncio.sleep(0.5)  # the next two have started (journaled too)
        second = await loop.cycle()
        assert second.transferred == QUICK
        assert second.polled <= 2 * QUICK, second  # the ended ones and the started ones, not the queued
        third = await loop.cycle()
        assert third.polled == 0 and third.moved == 0, third


@pytest.mark.timeout(120)
async def test_small_outputs_are_copied_when_their_job_ends_and_written_with_it_once(
    couch: CouchClient, monitor_settings: MonitorSettings, sites_api: Any, kit: Any, tmp_path: Path
) -> None:
    """Outputs up to ``copy_at_once_bytes``: the job goes from submitted to completed in one revision (its history
    still has ``transferring``); larger ones are written ``transferring`` first (which frees the slot)."""
    settings = monitor_settings.model_copy(update={"copy_at_once_bytes": 1000})
    site = kit.local_site("at-once", tmp_path / "work", tmp_path / "out", f"file://{tmp_path / 'se'}")
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    db = couch.db(settings.databases[0])
    small, large = docs = [kit.job_doc("AtOnce_label", "Mod", run, site["name"]) for run in (1, 2)]
    command = {small["_id"]: "echo small > out.root", large["_id"]: "head -c 2000 /dev/zero > out.root"}
    async with monitor_loop(couch, settings) as loop, cancelled_after(backend, docs):
        await db.bulk_docs(docs)
        await kit.submit_jobs(db, backend, docs, tmp_path / "out", lambda d: command[d["_id"]])
        await caught_up(loop)

        async def both_ended() -> bool:
            states = await backend.status([backend_job_name(d) for d in docs])
            return all(s.state == BackendStatus.COMPLETED for s in states.values())

        await kit.wait_until(both_ended, 30, "both jobs' end")
        report = await loop.cycle()
        assert report.transferred == 2, report
        stored = {doc["_id"]: doc for doc in (await db.get_many([d["_id"] for d in docs])).values()}
        for doc in stored.values():
            assert doc["status"] == "completed" and [h["status"] for h in doc["history"]][-2:] == [
                "transferring",
                "completed",
            ]
        assert rev_number(stored[small["_id"]]) == 3  # created, submitted, transferring and completed at once
        assert rev_number(stored[large["_id"]]) == 4  # created, submitted, transferring, completed
        assert stored[large["_id"]]["outputs"][0]["size"] == 2000


@pytest.mark.timeout(120)
async def test_jobs_submitted_reads_only_what_a_feed_that_is_behind_has_not_brought(
    couch: CouchClient,
    monitor_settings: MonitorSettings,
    sites_api: Any,
    kit: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = monitor_settings.model_copy(update={"changes_batch": 2})
    site = kit.local_site("announced", tmp_path / "work", tmp_path / "out", f"file://{tmp_path / 'se'}")
    sites_api.sites[site["name"]] = site
    backend = make_backend("local", site["options"])
    db = couch.db(settings.databases[0])
    brought, later, others, behind = (
        [kit.job_doc(label, "Mod", run, site["name"]) for run in runs]
        for label, runs in (("Announced", (1, 2)), ("Announced", (3,)), ("Other", (1, 2)), ("Announced", (4,)))
    )
    submitted = brought + later + behind
    read: list[str] = []
    async with monitor_loop(couch, settings) as loop, cancelled_after(backend, submitted):
        (feed,) = [f for f in loop.followers() if f.db.name == db.name]
        await db.bulk_docs(brought)
        await kit.submit_jobs(db, backend, brought, tmp_path / "out", lambda d: "sleep 600")
        while await feed.poll_once(wait=False):
            pass
        read_from_couch = loop.followed[db.name].read

        async def counted_read(ids: Any) -> dict[str, Any]:
            read.extend(ids)
            return await read_from_couch(ids)

        monkeypatch.setattr(loop.followed[db.name], "read", counted_read)
        await db.bulk_docs(later)
        await kit.submit_jobs(db, backend, later, tmp_path / "out", lambda d: "sleep 600")
        await loop.take_submitted(db.name, [d["_id"] for d in later])
        assert read == []  # the feed keeps up: its next batch brings the job
        assert await feed.poll_once(wait=False) == 1 and later[0]["_id"] in loop.active[db.name]
        await db.bulk_docs(others)  # other labels' new documents ahead of the next job in the feed
        await db.bulk_docs(behind)
        await kit.submit_jobs(db, backend, behind, tmp_path / "out", lambda d: "sleep 600")
        assert await feed.poll_once(wait=False) == 2 and feed.behind  # a full batch: the two others only
        await loop.take_submitted(db.name, [d["_id"] for d in brought + behind])
        assert read == [behind[0]["_id"]]  # the two the feed brought with their backend ids are watched already
        assert {d["_id"] for d in submitted} <= set(loop.active[db.name])
