"""Asking backends about active jobs: which jobs a cycle asks each site about, and the moves their states call for.

A site whose backend keeps a change journal is asked only about what its journal names, what became due and a
sweep's slice (:mod:`prodflow_monitor.active`); one without a journal about all its jobs, at most every
:data:`FULL_POLL_GAP_S`. The moves are written with ``_bulk_docs`` by :class:`~prodflow_monitor.writes.JobWrites`
(a 409 means: re-read, decide again on the fresh document, write again; never overwrite). A job that finished
with small outputs (``copy_at_once_bytes``) has them copied before that write, which then records ``transferring``
and the copy's outcome at once: one revision instead of two. The ``transferring`` document is only stored where
the copy takes long enough to matter (its slot is freed first).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from typing import Any

from prodflow_core.backends import Backend, BackendError, BackendState
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import TRANSFERRING
from prodflow_core.waiting import first_of

from prodflow_monitor.active import ActiveJobs, JournalPolling, backend_id_of
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.reconcile import POLLED_STATUSES, Decision, apply_moves, decide
from prodflow_monitor.report import CycleReport
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sites import Site, SiteDirectory, policy_for
from prodflow_monitor.transfers import OutputTransfers
from prodflow_monitor.writes import JobWrites

_log = logging.getLogger("prodflow.monitor.polling")

Doc = dict[str, Any]
FULL_POLL_GAP_S = 0.2  # a site without a change journal is asked about all its jobs at most this often


class BackendPolling:
    """The backend half of a monitor cycle for one replica's active jobs (module docstring)."""

    def __init__(
        self,
        settings: MonitorSettings,
        sites: SiteDirectory,
        active: Mapping[str, ActiveJobs],
        writes: JobWrites,
        outputs: OutputTransfers,
        metrics: MonitorMetrics,
        wake: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.sites = sites
        self.active = active
        self.writes = writes
        self.outputs = outputs
        self.metrics = metrics
        self.wake = wake
        """Set when a journal names more than one read took, or names jobs between cycles."""
        self._journals: dict[tuple[str, str], JournalPolling] = {}
        self._polled_at: dict[tuple[str, str], float] = {}
        self._unknown_sites: set[str] = set()

    async def poll_database(self, database: str, report: CycleReport) -> None:
        """Ask each site's backend about this cycle's share of its active jobs in ``database``; write the moves."""
        active = self.active[database]
        due = active.take_due()
        for site_name, site_jobs in sorted(active.by_site.items(), key=lambda item: str(item[0])):
            site = await self.sites.site(site_name)
            if site is None:
                if site_name not in self._unknown_sites:
                    _log.warning("jobs of unknown site %r are not polled (submitter does not list it)", site_name)
                    self._unknown_sites.add(str(site_name))
                continue
            try:
                backend = self.sites.backend(site)
            except BackendError as exc:
                _log.warning("site %s: %s", site.name, exc)
                continue
            chosen = await self._to_poll(database, site.name, backend, site_jobs, due)
            docs = [doc for doc_id in chosen if (doc := active.get(doc_id)) and doc.get("status") in POLLED_STATUSES]
            try:
                for start in range(0, len(docs), self.settings.status_batch):
                    batch = docs[start : start + self.settings.status_batch]
                    await self._poll_batch(database, site, backend, batch, report)
            except BaseException:
                # The journal's lines for these jobs are read: without this, a cycle that failed to write (CouchDB
                # down) left their ends to the sweep.
                if (polling := self._journals.get((database, site.name))) is not None:
                    polling.ask_again(chosen)
                raise
        for key in [key for key in self._journals if key[0] == database and key[1] not in active.by_site]:
            del self._journals[key]  # no job there any more: its journal is not followed (nor woken for)

    async def _to_poll(
        self, database: str, site: str, backend: Backend, site_jobs: dict[str, None], due: set[str]
    ) -> list[str]:
        """The site's jobs to ask about this cycle (see :mod:`prodflow_monitor.active`)."""
        now = time.monotonic()
        if not backend.keeps_journal:
            if now - self._polled_at.get((database, site), 0.0) < FULL_POLL_GAP_S:
                return [doc_id for doc_id in due if doc_id in site_jobs]
            self._polled_at[(database, site)] = now
            return list(site_jobs)
        polling = self._journals.get((database, site))
        if polling is None or polling.backend is not backend:
            polling = self._journals[(database, site)] = JournalPolling(backend)
        first = polling.cursor is None
        if await polling.read():
            self.wake.set()  # more journal lines than one read takes
        if first:
            polling.swept_at = now
            return list(site_jobs)
        changed, polling.changed = polling.changed, set()
        chosen = dict.fromkeys(doc_id for doc_id in itertools.chain(changed, due) if doc_id in site_jobs)
        chosen.update(dict.fromkeys(polling.sweep(site_jobs, now, self.settings.cycle_s, self.settings.sweep_s)))
        return list(chosen)

    async def _poll_batch(
        self, database: str, site: Site, backend: Backend, docs: list[Doc], report: CycleReport
    ) -> None:
        ids = {str(doc["_id"]): str(backend_id_of(doc)) for doc in docs}
        began = time.monotonic()
        try:
            states = await backend.status(sorted(set(ids.values())))
        except BackendError as exc:
            self.metrics.backend_errors.labels(site.name).inc()
            _log.warning("status of %d jobs at %s failed: %s", len(ids), site.name, exc)
            return
        finally:
            self.metrics.backend_seconds.labels(backend.name).observe(time.monotonic() - began)
            report.backend_s += time.monotonic() - began
        report.polled += len(ids)
        now = time.time()
        wanted: dict[str, BackendState] = {}
        finished: list[Doc] = []
        to_cancel: list[str] = []
        for doc in docs:
            state = states.get(ids[str(doc["_id"])])
            if state is None:
                continue
            decision = self._decide(doc, state, site, now)
            if decision:
                wanted[str(doc["_id"])] = state
                if decision.moves[-1].status == TRANSFERRING:
                    finished.append(doc)
                if decision.cancel_at_backend:
                    to_cancel.append(ids[str(doc["_id"])])
        if to_cancel:
            with contextlib.suppress(BackendError):
                await backend.cancel(to_cancel)
        if not wanted:
            return
        copying = {str(doc["_id"]) for doc in await self.outputs.quick_to_copy(finished, site, backend)}
        copied = await self.outputs.copy(database, [d for d in finished if d["_id"] in copying], report)
        at = utc_now()

        def change(fresh: Doc) -> Doc | None:
            state = wanted[str(fresh["_id"])]
            if backend_id_of(fresh) != state.backend_id:
                return None  # sent again meanwhile: this state is about an earlier try
            decision = self._decide(fresh, state, site, time.time())
            new = apply_moves(fresh, decision.moves, at, state) if decision else None
            if new is not None and new["status"] == TRANSFERRING and new["_id"] in copying:
                return copied(new) or new  # its outputs were copied above: transferring and their outcome at once
            return new

        self.outputs.record(await self.writes.write(database, list(wanted), change, report), report)

    def _decide(self, doc: Mapping[str, Any], state: BackendState | None, site: Site, now: float) -> Decision:
        return decide(
            doc,
            state,
            policy_for(doc, site),
            now,
            max_walltime_s=site.max_walltime_s,
            lost_grace_s=self.settings.lost_grace_s,
        )

    async def watch_journals(self, stop: asyncio.Event) -> None:
        """Wake the loop as soon as a site's change journal names jobs (checked every ``journal_poll_s``)."""
        while not stop.is_set():
            await first_of(stop, timeout_s=self.settings.journal_poll_s)
            for polling in list(self._journals.values()):
                if polling.cursor is not None and await polling.backend.journal_moved(polling.cursor):
                    self.wake.set()
                    break
