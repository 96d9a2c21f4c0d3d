"""The monitor loop: follow both job databases, poll backends for active jobs, move documents, copy outputs.

Per database, a ``_changes`` follower keeps this replica's job counts (``prodflow_core.counts``, its checkpoint
stored beside them) and the set of its active jobs (``submitted``, ``running``, ``transferring``) up to date,
announces ``job.*`` events for the states it sees and checks labels whose jobs became final. A cycle asks each
site's backend about its active jobs in batches (:mod:`prodflow_monitor.polling`: only the changed ones, for a
backend that keeps a change journal), writes the moves with ``_bulk_docs`` (a 409 means: re-read, decide again,
write again; never overwrite) and copies the outputs of finished jobs. A cycle's work is proportional to the
active jobs, never to every job ever made; the active jobs are re-read from the counts' ledger (no CouchDB index,
so never behind another label's index build) at start and every ``resync_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prodflow_core.couch import (
    Change,
    ChangesFollower,
    CouchClient,
    CouchDatabase,
    OwnWrites,
    rev_number,
)
from prodflow_core.counts import CountsCheckpoints, JobCounter, counted_docs, jobs_in_statuses, label_status_counts
from prodflow_core.events import EventPublisher
from prodflow_core.jobdocs import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    TRANSFERRING,
    prepare_job_database,
)
from prodflow_core.sql import create_tables
from prodflow_core.waiting import first_of

from prodflow_monitor.active import ActiveJobs, backend_id_of
from prodflow_monitor.announce import SeenStates, announced_types, job_events, label_completed_event
from prodflow_monitor.archive.reads import without_restored
from prodflow_monitor.archive.tables import archive_tables
from prodflow_monitor.followed import FollowedDocs
from prodflow_monitor.lookahead import Lookahead
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.polling import BackendPolling
from prodflow_monitor.provenance.records import OutputRecords
from prodflow_monitor.reconcile import POLLED_STATUSES
from prodflow_monitor.report import CycleReport
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sharding import Shard
from prodflow_monitor.sites import SiteDirectory
from prodflow_monitor.transfers import OutputTransfers, destination_of, output_folder
from prodflow_monitor.views import DESIGN_DOCUMENTS, is_label_final
from prodflow_monitor.writes import JobWrites

_log = logging.getLogger("prodflow.monitor.loop")

Doc = dict[str, Any]
_KEPT_FIELDS = ("_id", "_rev", "status", "attempt", "updated_at", "site", "backend", "policy", "label", "experiment")
MIN_CYCLE_GAP_S = 0.02


def watched_form(doc: Mapping[str, Any]) -> Doc:
    """The part of a job document the loop keeps in memory between cycles."""
    kept = {name: doc[name] for name in _KEPT_FIELDS if name in doc}
    kept["history"] = list(doc.get("history") or [])[-2:]
    return kept


class MonitorLoop:
    """One replica's share of the job space in every job database (see the module docstring)."""

    def __init__(
        self,
        couch: CouchClient,
        settings: MonitorSettings,
        sites: SiteDirectory,
        events: EventPublisher,
        counter: JobCounter,
        metrics: MonitorMetrics | None = None,
        records: OutputRecords | None = None,
    ) -> None:
        self.settings = settings
        self.counter = counter
        self.sites = sites
        self.events = events
        self.metrics = metrics or MonitorMetrics()
        self.shard = Shard(settings.replica_index, settings.replicas)
        self.dbs: dict[str, CouchDatabase] = {name: couch.db(name) for name in settings.databases}
        for db in self.dbs.values():
            db.own_writes = OwnWrites()  # its followers take back what it wrote from memory
        self.active: dict[str, ActiveJobs] = {name: ActiveJobs() for name in self.dbs}
        self.followed = {
            name: FollowedDocs(db, settings.followed_docs, self.shard.owns_job) for name, db in self.dbs.items()
        }
        self.wake = asyncio.Event()
        self.seen = SeenStates()
        self.outputs = OutputTransfers(settings, sites, self.metrics, records)
        self.writes = JobWrites(self.dbs, self.followed, self.metrics, self._track_moved)
        self.polling = BackendPolling(settings, sites, self.active, self.writes, self.outputs, self.metrics, self.wake)
        self._last_resync = 0.0
        self.feeds: dict[str, ChangesFollower] = {}
        """Each job database's follower, once :meth:`followers` made it."""
        self.ahead: dict[str, Lookahead] = {}
        """Each job database's lookahead, once :meth:`lookaheads` made it."""
        # The feed and the lookahead count one database's documents one batch at a time: two transactions that
        # read the same ledger rows before either wrote would both move the counts (PostgreSQL's read committed).
        self._counting = {name: asyncio.Lock() for name in self.dbs}
        # And announce one batch at a time: two that found the same job state new would both announce it.
        self._announcing = {name: asyncio.Lock() for name in self.dbs}

    @property
    def consumer(self) -> str:
        """The name of this replica's ``_changes`` checkpoints."""
        return f"monitor-{self.shard}"

    async def prepare(self) -> None:
        """Create the databases, sync the design documents (then a view cleanup if any changed) and load active
        jobs.

        The feeds have no "now" to pin: counts never built start from the beginning of each database, and the
        events re-announced on that first pass have the ids they had before (the event store ignores them).
        """
        await create_tables(self.counter.engine, archive_tables())  # read by on_changes
        for db in self.dbs.values():
            await prepare_job_database(db, DESIGN_DOCUMENTS, shards=self.settings.couchdb_job_shards)
        await self.resync()

    def followers(self) -> list[ChangesFollower]:
        """One ``_changes`` follower per job database."""
        return [self._follower(name) for name in self.dbs]

    def _follower(self, name: str) -> ChangesFollower:
        async def handle(changes: list[Change]) -> None:
            await self.on_changes(name, changes)

        self.feeds[name] = follower = ChangesFollower(
            self.dbs[name],
            self.consumer,
            handle,
            batch_size=self.settings.changes_batch,
            longpoll_s=self.settings.changes_longpoll_s,
            checkpoints=CountsCheckpoints(self.counter, name),
            stream=True,
        )
        return follower

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle until ``stop`` is set: at once when the feed brings new active jobs, else every ``cycle_s``."""
        watcher = asyncio.create_task(self.polling.watch_journals(stop))
        try:
            await self._run(stop)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                if time.monotonic() - self._last_resync > self.settings.resync_s:
                    await self.resync()
                await self.cycle()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("monitor cycle failed; trying again")
            await first_of(stop, timeout_s=MIN_CYCLE_GAP_S)
            await first_of(self.wake, stop, timeout_s=self.settings.cycle_s)

    # --- the active set ------------------------------------------------------------------------------------

    async def resync(self) -> None:
        """Re-read this replica's active jobs: ids from the counts' ledger, documents in bulk (start and resync_s)."""
        for name in self.dbs:
            counted = await jobs_in_statuses(self.counter.engine, name, ACTIVE_STATUSES)
            ids = [doc_id for doc_id in counted if self.shard.owns_job(doc_id)]
            fresh: list[Doc] = []
            for start in range(0, len(ids), 1000):
                docs = await self.followed[name].read(ids[start : start + 1000])
                fresh += [watched_form(doc) for doc in docs.values() if self._watchable(doc)]
            self.active[name].replace_all(fresh)
            self.metrics.active.labels(name).set(len(fresh))
        self._last_resync = time.monotonic()

    @staticmethod
    def _watchable(doc: Mapping[str, Any]) -> bool:
        status = doc.get("status")
        return status == TRANSFERRING or (status in POLLED_STATUSES and backend_id_of(doc) is not None)

    def track(self, database: str, doc: Mapping[str, Any]) -> bool:
        """Keep or drop ``doc`` in the active set (older revisions than the one held are ignored); True if new."""
        jobs = self.active[database]
        held = jobs.get(str(doc["_id"]))
        if held is not None and rev_number(held) > rev_number(doc):
            return False
        if self._watchable(doc):
            jobs.put(watched_form(doc))
            new = held is None
        else:
            jobs.drop(str(doc["_id"]))
            self.outputs.forget(str(doc["_id"]))
            new = False
        self.metrics.active.labels(database).set(len(jobs))
        return new

    def _track_moved(self, database: str, doc: Mapping[str, Any]) -> bool:
        """:meth:`track` a document this replica wrote, found moved on a fresh read or heard submitted; while the
        feed is behind, its label is counted at the lookahead's next look."""
        if (ahead := self.ahead.get(database)) is not None:
            ahead.note(str(doc.get("label")))
        return self.track(database, doc)

    # --- the feed ------------------------------------------------------------------------------------------

    async def on_changes(self, database: str, changes: list[Change]) -> None:
        """Handle one batch of a job database's ``_changes``: count, track, announce, check labels."""
        owned = [change for change in changes if self.shard.owns_job(change.id)]
        await self._note_and_count(database, owned)
        if not self.settings.run_loop:
            return  # an API-only replica keeps its share of the counts, nothing else
        docs: list[Doc] = []
        woke = False
        for change in owned:
            if change.deleted:
                self.active[database].drop(change.id)
                self.seen.forget(change.id)
                continue
            doc = change.doc
            if not doc or doc.get("type") != "job":
                continue
            woke = self.track(database, doc) or woke
            docs.append(doc)
        if woke:
            self.wake.set()
        await self._announce(database, docs)
        await self.check_labels(database, _final_labels(docs))

    def lookaheads(self) -> list[Lookahead]:
        """One :class:`Lookahead` past each job database's follower (made by :meth:`followers` first)."""
        self.ahead = {
            name: Lookahead(self.dbs[name], feed, functools.partial(self.count_ahead, name), self.shard.owns_job)
            for name, feed in self.feeds.items()
        }
        return list(self.ahead.values())

    async def count_ahead(self, database: str, changes: list[Change]) -> None:
        """Count and announce what a :class:`Lookahead` read past the feed, and check those labels. Nothing more:
        the feed brings the same documents for the rest (the active set; their states are announced already),
        and the loop has the jobs it must poll from ``jobs.submitted``."""
        await self._note_and_count(database, changes)
        if self.settings.run_loop:
            docs = [change.doc for change in changes if change.doc and change.doc.get("type") == "job"]
            await self._announce(database, docs)
            await self.check_labels(database, _final_labels(docs))

    async def _announce(self, database: str, docs: list[Doc]) -> None:
        """Publish the ``job.*`` events of the states of ``docs`` not announced yet (see :class:`SeenStates`)."""
        async with self._announcing[database]:
            news = [doc for doc in docs if announced_types(doc) and self.seen.is_new(doc)]
            fresh = await without_restored(self.counter.engine, news)
            events = job_events(database, fresh)
            if events:
                await self.events.publish_many(events)
                for event in events:
                    self.metrics.events.labels(event.short_type).inc()
            self.seen.remember(fresh)

    async def _note_and_count(self, database: str, changes: list[Change]) -> None:
        """Keep the changed job documents for listings, then count them (the feed's and the lookahead's)."""
        followed = self.followed[database]
        for change in changes:  # before the counts: a listing that finds a job by its counted row sees this revision
            if change.deleted:
                followed.drop(change.id)
            elif change.doc and change.doc.get("type") == "job":
                followed.note(change.doc)
        async with self._counting[database]:
            await self.counter.apply(database, counted_docs(changes))

    async def take_submitted(self, database: str, job_ids: list[str]) -> None:
        """Watch jobs the submitter just handed to a backend (its ``jobs.submitted``), at once.

        The job feed brings the same documents, but maybe only after other labels' new documents: a small
        campaign filed behind a big one is polled without waiting for them. So the jobs are read only while the
        feed is behind (its last batch was full, or its lookahead found it trailing the database), and only
        those it has not brought with their backend id yet; a feed that keeps up brings them in its next batch,
        and reading them too would double the reads. Their labels are counted at the lookahead's next look.
        """
        feed, ahead = self.feeds.get(database), self.ahead.get(database)
        if feed is not None and feed.caught_up.is_set() and not feed.behind and not (ahead and ahead.behind):
            return
        followed = self.followed.get(database)
        active = self.active.get(database)
        owned = [
            job_id
            for job_id in job_ids
            if self.shard.owns_job(job_id) and not (active and (held := active.get(job_id)) and backend_id_of(held))
        ]
        if followed is None or not owned:
            return
        woke = False
        for start in range(0, len(owned), 1000):
            for doc in (await followed.read(owned[start : start + 1000])).values():
                woke = self._track_moved(database, doc) or woke
        if woke:
            self.wake.set()

    async def check_labels(self, database: str, labels: Mapping[str, str | None]) -> None:
        """Emit ``label.completed`` for each of ``labels`` whose jobs are all final, once per outcome.

        Decided on the kept counts, which include the batch being handled: O(statuses), whatever the label's size.
        """
        db = self.dbs[database]
        for label, experiment in sorted(labels.items()):
            counts = await label_status_counts(self.counter.engine, database, label)
            if not is_label_final(counts):
                continue
            marker_name = f"monitor-label-completed:{label}"
            marker = await db.get_local(marker_name) or {}
            if marker.get("counts") == counts:
                continue  # this outcome was announced already
            generation = int(marker.get("generation", 0)) + 1
            await self.events.publish(label_completed_event(database, label, experiment, counts, generation))
            await db.put_local(marker_name, {"counts": counts, "generation": generation})
            self.metrics.events.labels("label.completed").inc()
            _log.info("label %s of %s completed: %s", label, database, counts)

    # --- the cycle -----------------------------------------------------------------------------------------

    async def cycle(self) -> CycleReport:
        """Poll backends for every active job of this replica, apply the moves, copy finished jobs' outputs."""
        report = CycleReport()
        started = time.monotonic()
        for name in self.dbs:
            await self.polling.poll_database(name, report)
            await self._transfer_database(name, report)
        report.seconds = time.monotonic() - started
        self.metrics.cycle_seconds.observe(report.seconds)
        if report.moved or report.transfer_failures:
            _log.info(
                "cycle: %d polled, %d moved %s, %d transferred, %d transfers failed in %.2f s "
                "(backend %.2f s, writes %.2f s, transfers %.2f s)",
                report.polled,
                report.moved,
                report.moves,
                report.transferred,
                report.transfer_failures,
                report.seconds,
                report.backend_s,
                report.write_s,
                report.transfer_s,
            )
        return report

    # --- outputs -------------------------------------------------------------------------------------------

    async def _transfer_database(self, database: str, report: CycleReport) -> None:
        docs, more = self.outputs.ready(self.active[database])
        if more:
            self.wake.set()  # more are waiting: the next cycle comes at once
        if not docs:
            return
        change = await self.outputs.copy(database, docs, report)
        self.outputs.record(
            await self.writes.write(database, [str(doc["_id"]) for doc in docs], change, report), report
        )


def _final_labels(docs: Iterable[Mapping[str, Any]]) -> dict[str, str | None]:
    """The labels (with their experiments) of the final jobs among ``docs``: those :meth:`check_labels` checks."""
    return {str(doc["label"]): doc.get("experiment") for doc in docs if doc.get("status") in FINAL_STATUSES}


__all__ = ["CycleReport", "MonitorLoop", "destination_of", "output_folder"]
