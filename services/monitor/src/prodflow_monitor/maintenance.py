"""Upkeep of the job databases: compaction of fragmented databases and view indexes, and view cleanup.

A job document is rewritten at every status move, so a database holds many dead revisions per job and its view
indexes grow the same way (WMCore#10779: job databases left alone grew without bound). One replica (replica 0)
runs :meth:`Maintenance.run`; a pass never waits for a compaction, which runs in the server (CouchDB 3) or in a
request of its own (PouchDB Server answers ``_compact`` only when done).

Where the server reports no active size (PouchDB Server) fragmentation is unknown; there a database is compacted
when it was written since its last compaction (PouchDB's compaction is incremental: it walks only the documents
changed since then). PouchDB Server has no view index sizes and no view compaction: its indexes are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import httpx
from prodflow_core.couch import CouchDatabase, CouchError
from prodflow_core.couch.compaction import (
    StoreReading,
    StoreSizes,
    compact,
    compact_view,
    compacted_seq,
    read_stores,
    view_cleanup,
)

from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.settings import MonitorSettings

_log = logging.getLogger("prodflow.monitor.maintenance")


@dataclass(frozen=True)
class CompactionPolicy:
    """When a store is worth compacting."""

    fragmentation: float
    min_bytes: int

    def reason(self, sizes: StoreSizes, *, written_since: bool | None = None) -> str | None:
        """Why ``sizes`` calls for a compaction, or ``None``: never while one runs, never below ``min_bytes``;
        by fragmentation where known, else (``written_since``) when written since the last compaction."""
        if sizes.compact_running or (sizes.file is not None and sizes.file < self.min_bytes):
            return None
        fragmentation = sizes.fragmentation
        if fragmentation is not None:
            if fragmentation < self.fragmentation:
                return None
            return f"fragmentation {fragmentation:.2f} of {sizes.file} bytes"
        if written_since:
            return "written since its last compaction (the server reports no active size)"
        return None


def runs_maintenance(settings: MonitorSettings) -> bool:
    """True for the one replica that keeps the job databases: replica 0 when it drives job state."""
    return settings.run_loop and settings.replica_index == 0 and settings.maintenance_s > 0


class Maintenance:
    """Compaction and view cleanup of the job databases, a pass every ``maintenance_s``."""

    def __init__(self, dbs: list[CouchDatabase], policy: CompactionPolicy, metrics: MonitorMetrics) -> None:
        self.dbs = dbs
        self.policy = policy
        self.metrics = metrics
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}

    @classmethod
    def from_settings(cls, dbs: list[CouchDatabase], settings: MonitorSettings, metrics: MonitorMetrics) -> Maintenance:
        """The maintenance of ``dbs`` with the thresholds of ``settings``."""
        return cls(dbs, CompactionPolicy(settings.compact_fragmentation, settings.compact_min_bytes), metrics)

    async def run(self, stop: asyncio.Event, every_s: float) -> None:
        """A pass every ``every_s`` (the first after one pause, not at start-up) until ``stop`` is set."""
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), every_s)
                    return
                try:
                    await self.run_pass()
                except Exception:  # a bug in one pass must not end maintenance, nor the service
                    _log.exception("maintenance pass failed")
        finally:
            await self.aclose()

    async def run_pass(self) -> list[StoreReading]:
        """One pass over every job database; returns the stores whose compaction it started. A database whose
        server fails is logged and tried again at the next pass."""
        started: list[StoreReading] = []
        for db in self.dbs:
            try:
                started += await self._maintain(db)
            except (CouchError, httpx.HTTPError) as exc:
                _log.warning("maintenance of %s failed, next pass tries again: %s", db.name, exc)
        return started

    async def wait_idle(self) -> None:
        """Wait for the compaction requests still in flight (PouchDB Server's, which answer when done)."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop waiting for compaction requests in flight (the server goes on with them)."""
        for task in self._running.values():
            task.cancel()
        await self.wait_idle()
        self._running.clear()

    async def _maintain(self, db: CouchDatabase) -> list[StoreReading]:
        await view_cleanup(db)  # cheap, and it catches design documents changed by another service too
        started = []
        for reading in await read_stores(db):
            reason = self.policy.reason(reading.sizes, written_since=await self._written_since(db, reading))
            if reason is not None and self._start(db, reading, reason):
                started.append(reading)
        return started

    async def _written_since(self, db: CouchDatabase, reading: StoreReading) -> bool | None:
        """Whether the database changed since its last compaction, asked only where fragmentation is unknown."""
        if reading.design is not None or reading.sizes.fragmentation is not None:
            return None
        compacted = await compacted_seq(db)
        return compacted is None or compacted != await db.update_seq()

    def _start(self, db: CouchDatabase, reading: StoreReading, reason: str) -> bool:
        key = (db.name, reading.target)
        if key in self._running and not self._running[key].done():
            return False  # our own request still runs: PouchDB Server says nothing of compact_running
        request = compact(db) if reading.design is None else compact_view(db, reading.design)
        task = asyncio.create_task(request, name=f"compact-{db.name}-{reading.target}")
        task.add_done_callback(lambda done: _log_failure(db.name, reading.target, done))
        self._running[key] = task
        self.metrics.compactions.labels(db.name, reading.target).inc()
        _log.info("compacting %s %s: %s", db.name, reading.target, reason)
        return True


def _log_failure(database: str, target: str, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.warning("compaction of %s %s failed, next pass tries again: %s", database, target, exc)
