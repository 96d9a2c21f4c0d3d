"""The submission loop (gasp_client's submission half): per site, hand ``waiting`` jobs to the backend.

In site queue order (runlevel, newfirst, priority, serial) up to the site's ``max_running``; drained sites get
nothing new. The waiting jobs are kept in memory: loaded once from the kept counts' ledger at start, then kept
current from the databases' ``_changes`` (``job_feed``), so a round never re-reads every job. Slots in use per
site come from the kept counts plus the jobs this loop claimed that the feed has not shown yet: neither the start
nor a round queries a view, so neither waits for an index that other labels' new documents are building.

A job reaches its backend in three steps, each safe to interrupt:
1. ``waiting → submitted`` with ``backend.id = null`` and ``backend.state = SUBMITTING`` (bulk, with ``_rev``: of
   two submitters only one wins);
2. ``backend.submit`` under the job's name (``<job id>:a<attempt>``);
3. ``backend.id`` recorded (bulk).
Steps 2 and 3 run beside the next rounds (up to :data:`IN_FLIGHT_PER_SITE` batches per site). A backend whose ids
are the jobs' names (``names_are_ids``: ``local``) has its id and command recorded in step 1, and step 3 writes
nothing: a job's revision fewer. A crash between 1 and 3 leaves ``submitted`` jobs the backend may not have (no
backend id, or still ``SUBMITTING``: :func:`~prodflow_core.jobdocs.unconfirmed`); at start-up (and once nothing
of the site is under way after a submission broke off) :meth:`reconcile` asks the backend for them by name and
records the id, or puts them back to ``waiting`` if the backend never got them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from prodflow_core import jobdocs
from prodflow_core.backends import Backend
from prodflow_core.couch import ChangesFollower, CouchDatabase, rev_number
from prodflow_core.counts import CountsChange, site_counts
from prodflow_core.events import utc_now
from prodflow_core.waiting import first_of

from prodflow_submitter import jobstore, ledger
from prodflow_submitter.backend_jobs import BackendJobs
from prodflow_submitter.models import SiteRow, campaign_number
from prodflow_submitter.runtime import Runtime
from prodflow_submitter.site_queue import SiteQueue, Waiting
from prodflow_submitter.sites import backend_of, list_sites

_log = logging.getLogger("prodflow.submitter.queue")
_FETCH_CHUNK = 1000  # documents per _all_docs request
IN_FLIGHT_PER_SITE = 4
"""Claimed batches of one site on their way to its backend at once; past it the site waits a round."""
Doc = dict[str, Any]
SLOT_STATUSES = (jobdocs.SUBMITTED, jobdocs.RUNNING)
"""Statuses in which a job holds one of its site's ``max_running`` slots."""
HELD_WAITING = 20_000
"""Waiting documents held as created or last followed (~20 MB of job documents), so that a claim writes on the
revision held instead of reading it back first; one held that is no longer current makes a 409, then a read."""


def _arrival(campaign_id: object) -> int:
    return campaign_number(str(campaign_id)) or 0


class SubmissionLoop:
    """Submits waiting jobs of every site, round after round, until stopped."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.waiting: dict[str, SiteQueue] = defaultdict(SiteQueue)
        self._site_of: dict[tuple[str, str], str] = {}
        self.backend_jobs = BackendJobs(runtime.sessions)
        self._backends: dict[str, tuple[Any, Backend]] = {}
        self.ready = asyncio.Event()
        self._backoff: dict[str, tuple[float, float]] = {}  # site → (not before, last delay) after a failure
        self.feeds: list[ChangesFollower] = []
        self._claimed: dict[tuple[str, str], tuple[str, int]] = {}  # claimed, not yet seen by the feed: site, rev
        self._reconcile_due: set[str] = set()  # sites whose last submission broke off between its three steps
        self._in_flight: dict[str, set[asyncio.Task[None]]] = defaultdict(set)  # site → its steps 2 and 3 under way
        self._held: dict[tuple[str, str], Doc] = {}  # see HELD_WAITING

    # -- the in-memory queue ------------------------------------------------------------------------------
    def track(self, database: str, doc: Doc | None, doc_id: str) -> None:
        """Keep the queue current with one document (``None``: deleted)."""
        key = (database, doc_id)
        claim = self._claimed.get(key)
        if claim is not None and doc is not None and rev_number(doc) < claim[1]:
            return  # older than this loop's claim (the feed is behind): it must not queue the job again
        if claim is not None:
            del self._claimed[key]  # the kept counts hold this job's slot from now on
        self._unqueue(key)
        if doc and doc.get("type") == "job" and doc.get("status") == jobdocs.WAITING:
            if len(self._held) < HELD_WAITING:
                self._held[key] = doc
            site = str(doc.get("site"))
            self.waiting[site].put(Waiting(database, doc_id, int(doc.get("run", 0)), int(doc.get("priority") or 0),
                                           _arrival(doc.get("campaign_id"))), key)  # fmt: skip
            self._site_of[key] = site

    def _unqueue(self, key: tuple[str, str]) -> None:
        old_site = self._site_of.pop(key, None)
        if old_site is not None:
            self.waiting[old_site].discard(key)
        self._held.pop(key, None)

    def take_created(self, database: str, docs: list[Doc]) -> None:
        """Queue a campaign's new documents at once (their ``_changes`` rows come later and change nothing)."""
        for doc in docs:
            self.track(database, doc, str(doc["_id"]))
        if docs:
            self.runtime.wake.set()

    def frees_slots(self, change: CountsChange) -> bool:
        """True if ``change`` (one feed batch) freed slots of a site that has waiting jobs: a round is due now,
        not after ``submit_interval_s``, or a site's throughput would be capped at ``max_running`` per interval."""
        freed: dict[str, int] = defaultdict(int)
        for (site, status), jobs in change.sites.items():
            if status in SLOT_STATUSES:
                freed[site] -= jobs
        return any(jobs > 0 and self.waiting.get(site) for site, jobs in freed.items())

    async def load(self) -> None:
        """Fill the queue from the kept counts' ledger (at start; the feed keeps it current after).

        No view is read, so a start never waits for an index build that other labels' new documents caused.
        The ledger has no run or priority: the run is in the job id, the priority is its module's in the campaign.
        An entry that is stale by the time it is picked (the ledger read raced the feed) leaves the queue when
        its document is fetched for the claim.
        """
        priorities: dict[tuple[str, str, str], int] = {}
        for name in self.runtime.databases:
            for doc_id, site, campaign_id, label, module in await ledger.waiting(self.runtime.counter.engine, name):
                module_key, job_key = (campaign_id, label, module), (name, doc_id)
                if module_key not in priorities:
                    priorities[module_key] = await self.backend_jobs.priority(*module_key)
                self.waiting[site].put(Waiting(name, doc_id, jobdocs.parse_job_id(doc_id)[2], priorities[module_key],
                                               _arrival(campaign_id)), job_key)  # fmt: skip
                self._site_of[job_key] = site

    # -- rounds -------------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Load, wait until the feeds caught up (slot counts are then current), reconcile, then submit round after
        round until ``stop``."""
        await self.load()
        for feed in self.feeds:
            await first_of(feed.caught_up, stop, timeout_s=None)
        for site in await self._sites():
            await self._guarded(self.reconcile, site)
        self.ready.set()
        try:
            while not stop.is_set():
                self.runtime.wake.clear()
                await self.round()
                await first_of(stop, self.runtime.wake, timeout_s=self.runtime.settings.submit_interval_s)
            await asyncio.gather(*self._sending(), return_exceptions=True)
        except asyncio.CancelledError:
            for task in self._sending():
                task.cancel()  # what they leave half done is reconciled at the next start
            raise

    def _sending(self) -> list[asyncio.Task[None]]:
        return [task for tasks in self._in_flight.values() for task in tasks]

    async def round(self) -> int:
        """One pass over every site that is not drained; returns how many jobs were claimed for backends."""
        sent = 0
        now = time.monotonic()
        for site in await self._sites():
            if self._backoff.get(site.name, (0, 0))[0] > now:
                continue
            busy = self._in_flight[site.name]
            if site.name in self._reconcile_due and (busy or not await self._reconciled(site)):
                continue  # never while the site's claimed jobs may still be on their way to its backend
            if site.drained or not self.waiting.get(site.name) or len(busy) >= IN_FLIGHT_PER_SITE:
                continue
            result = await self._guarded(self.submit_site, site)
            if result is None:  # broke off (CouchDB away?): jobs may be claimed or at the backend without an id
                self._reconcile_due.add(site.name)
                self._failed(site.name)
            sent += result or 0
        return sent

    async def _reconciled(self, site: SiteRow) -> bool:
        """Finish what a broken-off submission left (ids of jobs the backend has, or back to waiting)."""
        try:
            await self.reconcile(site)
        except Exception:
            _log.exception("site %s: reconciling after a failed submission failed; next round", site.name)
            self._failed(site.name)
            return False
        self._reconcile_due.discard(site.name)
        return True

    def _failed(self, site: str) -> None:
        delay = min(60.0, max(1.0, self._backoff.get(site, (0.0, 0.0))[1] * 2))
        self._backoff[site] = (time.monotonic() + delay, delay)

    async def _guarded(self, step: Callable[[SiteRow], Any], site: SiteRow) -> int | None:
        try:
            result = await step(site)
        except Exception:
            _log.exception("site %s: %s failed", site.name, getattr(step, "__name__", "step"))
            return None
        return int(result) if isinstance(result, int) else None

    async def _sites(self) -> list[SiteRow]:
        async with self.runtime.sessions() as session:
            return await list_sites(session)

    def backend(self, site: SiteRow) -> Backend:
        """The site's backend, rebuilt when the site changes."""
        cached = self._backends.get(site.name)
        if cached is None or cached[0] != site.updated_at:
            cached = (site.updated_at, backend_of(site))
            self._backends[site.name] = cached
        return cached[1]

    async def active_count(self, site: str) -> int:
        """Jobs of ``site`` holding a slot (submitted or running) in both databases.

        The kept counts as far as the feed got, plus this loop's claims the feed had not shown when the counts
        were read. The claims are taken first: the feed may count a claim and drop it while the counts are read,
        and taken after they would miss it on both sides (a site then got twice its ``max_running``); taken
        first, such a claim counts twice for this round at worst.
        """
        claimed = sum(1 for claim_site, _rev in self._claimed.values() if claim_site == site)
        counts = (await site_counts(self.runtime.counter.engine, [site])).get(site, {})
        return sum(counts.get(status, 0) for status in SLOT_STATUSES) + claimed

    async def submit_site(self, site: SiteRow) -> int:
        """Claim the site's next waiting jobs, up to its free slots, and start sending them to its backend; returns
        how many were claimed. The sending (steps 2 and 3) goes on beside the next rounds, so a slow backend
        submission holds neither the slots freed meanwhile nor other sites; the claims count as slots in use."""
        free = site.max_running - await self.active_count(site.name)
        if free <= 0:
            return 0
        count = min(free, self.runtime.settings.submit_batch)
        chosen = self.waiting[site.name].first(count, site.queue_order)
        by_db: dict[str, list[str]] = defaultdict(list)
        for item in chosen:
            by_db[item.database].append(item.job_id)
        claimed = 0
        for database, ids in by_db.items():
            docs = await self._claim(site, database, ids)
            if docs:
                self._start_sending(site, database, docs)
            claimed += len(docs)
        return claimed

    def _start_sending(self, site: SiteRow, database: str, docs: list[Doc]) -> None:
        task = asyncio.create_task(self._send_guarded(site, database, docs))
        self._in_flight[site.name].add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._in_flight[site.name].discard(finished)
            self.runtime.wake.set()  # the site may have been passed over for having too many under way

        task.add_done_callback(done)

    async def _send_guarded(self, site: SiteRow, database: str, docs: list[Doc]) -> None:
        try:
            await self._send(site, database, docs)
        except Exception:  # broke off (CouchDB away?): jobs may be at the backend without their id recorded
            _log.exception("site %s: sending %d claimed jobs broke off", site.name, len(docs))
            self._reconcile_due.add(site.name)
            self._failed(site.name)

    async def _claim(self, site: SiteRow, database: str, ids: list[str]) -> list[Doc]:
        """Step 1 for the jobs ``ids`` that are still waiting, on the revisions held or else read; the documents
        written."""
        db = self.runtime.db(database)
        now = utc_now()
        held = [doc for job_id in ids if (doc := self._held.get((database, job_id))) is not None]
        docs = held + await self._read_waiting(database, [job_id for job_id in ids if (database, job_id) not in
                                                          self._held])  # fmt: skip
        commands = await self._commands_known_now(site, docs)

        def claim(doc: Doc) -> Doc:
            command = commands.get(doc["_id"])
            backend_id = None if command is None else jobdocs.backend_job_name(doc)
            new = {**doc, "backend": {"name": site.backend, "id": backend_id, "state": jobdocs.CLAIMED,
                                      "checked_at": now}}  # fmt: skip
            if command is not None:
                new["command"] = command
            return new

        to_submitted = jobstore.moving_to(jobdocs.SUBMITTED, now, f"to site {site.name}", claim)
        for doc in docs:  # before the write: the feed may bring a claim before its answer comes back
            self._claimed[(database, doc["_id"])] = (site.name, rev_number(doc) + 1)
        try:
            claimed = await jobstore.update_many(db, docs, to_submitted)
        except BaseException:  # whatever was written, the feed counts
            for doc in docs:
                self._claimed.pop((database, doc["_id"]), None)
            raise
        for job_id in claimed.skipped:
            self._claimed.pop((database, job_id), None)
        for doc in claimed.written:
            key = (database, doc["_id"])
            self._unqueue(key)
            if key in self._claimed:  # not brought by the feed yet (after a 409 the claim is a later revision)
                self._claimed[key] = (site.name, rev_number(doc))  # written: it carries its new revision
        if claimed.skipped:  # moved on since the revision held: the queue follows the current one now
            await self._read_waiting(database, claimed.skipped)
        return claimed.written

    async def _commands_known_now(self, site: SiteRow, docs: list[Doc]) -> dict[str, str]:
        """Each job's command, when the site's backend names its jobs by their names (step 1 records it then);
        else, or if a job's campaign is unknown (step 2 meets that and puts it back), nothing."""
        if not self.backend(site).names_are_ids:
            return {}
        try:
            return {doc["_id"]: (await self.backend_jobs.of(site, doc)).command for doc in docs}
        except LookupError:
            return {}

    async def _read_waiting(self, database: str, ids: list[str]) -> list[Doc]:
        """Read ``ids`` and keep the queue current with them (an entry the feed has not corrected yet, moved or
        gone, leaves it now); the ones still waiting."""
        fetched = await self.runtime.db(database).get_many(ids) if ids else {}
        for job_id in ids:
            self.track(database, fetched.get(job_id), job_id)
        return [doc for doc in fetched.values() if doc.get("status") == jobdocs.WAITING]

    async def _send(self, site: SiteRow, database: str, docs: list[Doc]) -> None:
        """Steps 2 and 3 for claimed jobs, then ``jobs.submitted``; back to ``waiting`` if the backend refused."""
        db = self.runtime.db(database)
        try:
            jobs = [await self.backend_jobs.of(site, doc) for doc in docs]
            backend_ids = await self.backend(site).submit(jobs)
        except Exception as exc:
            _log.exception("site %s: submitting %d jobs failed", site.name, len(docs))
            self._failed(site.name)
            await jobstore.update_many(db, docs, jobstore.moving_to(
                jobdocs.WAITING, utc_now(), f"submission to {site.name} failed: {exc}"[:500]))  # fmt: skip
            return
        self._backoff.pop(site.name, None)
        ids = [d["_id"] for d in docs]
        commands = {job_id: job.command for job_id, job in zip(ids, jobs, strict=True)}
        await self.record(db, docs, dict(zip(ids, backend_ids, strict=True)), commands)
        await self.runtime.events.emit(
            "jobs.submitted", experiment=docs[0].get("experiment"),
            data={"label": docs[0].get("label"), "labels": sorted({d["label"] for d in docs}), "database": database,
                  "site": site.name, "backend": site.backend, "job_ids": [d["_id"] for d in docs]},
        )  # fmt: skip

    async def record(
        self, db: CouchDatabase, docs: list[Doc], backend_ids: dict[str, str], commands: dict[str, str]
    ) -> None:
        """Step 3: write the backend ids into ``submitted`` jobs that do not have one yet, with the command the
        backend runs (the provenance of the job's outputs names it)."""
        now = utc_now()

        def change(doc: Doc) -> Doc | None:
            backend = doc.get("backend") or {}
            if doc.get("status") != jobdocs.SUBMITTED or backend.get("id") or doc["_id"] not in backend_ids:
                return None
            return {**doc, "backend": {**backend, "id": backend_ids[doc["_id"]], "state": "PENDING",
                                       "checked_at": now}, "command": commands.get(doc["_id"]),
                    "updated_at": now}  # fmt: skip

        await jobstore.update_many(db, docs, change)

    async def reconcile(self, site: SiteRow) -> None:
        """Finish what a crash or a broken-off write left between steps 1 and 3 (unconfirmed claims: ids found at
        the backend by name recorded where missing, or back to ``waiting`` if it never got them), then let the
        backend resume its own work."""
        backend = self.backend(site)
        for name, db in self.runtime.databases.items():
            docs = await self._unconfirmed_claims(name, site.name)
            if not docs:
                continue
            names = {jobdocs.backend_job_name(doc): doc["_id"] for doc in docs}
            found = await backend.lookup(list(names))
            commands = {doc["_id"]: (await self.backend_jobs.of(site, doc)).command for doc in docs}
            await self.record(db, docs, {names[name]: backend_id for name, backend_id in found.items()}, commands)
            lost = [doc for doc in docs if jobdocs.backend_job_name(doc) not in found]
            await jobstore.update_many(db, lost, jobstore.moving_to(
                jobdocs.WAITING, utc_now(), "the backend never received it (submitter stopped)"))  # fmt: skip
            _log.info("site %s: reconciled %d jobs (%d found at the backend)", site.name, len(docs), len(found))
        await backend.resume()

    async def _unconfirmed_claims(self, database: str, site: str) -> list[Doc]:
        """Jobs of ``site`` its backend may not have: of the ledger's ``submitted`` jobs of the site (as many as its
        slots) and this loop's claims the feed has not shown yet, those :func:`~prodflow_core.jobdocs.unconfirmed`.
        No view, so reconciling never waits for an index build."""
        # the claims before the ledger, as in active_count
        ids = {job_id for (db_name, job_id), (claim_site, _rev) in self._claimed.items()
               if db_name == database and claim_site == site}  # fmt: skip
        ids.update(await ledger.ids(self.runtime.counter.engine, database, site, jobdocs.SUBMITTED))
        found: list[Doc] = []
        ordered = sorted(ids)
        for start in range(0, len(ordered), _FETCH_CHUNK):
            docs = await self.runtime.db(database).get_many(ordered[start : start + _FETCH_CHUNK])
            found.extend(doc for doc in docs.values() if jobdocs.unconfirmed(doc))
        return found
