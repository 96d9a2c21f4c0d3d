"""The jobs a monitor replica watches in one database, and which of them a cycle asks their backend about.

A cycle must not cost O(active jobs) when little changed: at 100,000 jobs queued at a site, asking about each one
every few seconds is most of the monitor's work and delays the few that ended. So the active jobs are indexed by
site and by what the cycle does with them, and a site whose backend keeps a change journal (``local``) is asked
only about the jobs its journal names, the jobs that became active since the last cycle, and a slice of the rest:
every job once per ``sweep_s``, the safety net for what a journal cannot show (a wrapper killed with its job).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prodflow_core.backends import Backend
from prodflow_core.jobdocs import TRANSFERRING

Doc = dict[str, Any]


def backend_id_of(doc: Mapping[str, Any]) -> str | None:
    """The id the job has at its backend (``None`` before submitter recorded it)."""
    backend = doc.get("backend")
    if isinstance(backend, Mapping) and backend.get("id"):
        return str(backend["id"])
    return None


def job_id_of(backend_name: str) -> str:
    """The job id in a backend job name (``jobdocs.backend_job_name``: ``<id>:a<attempt>``)."""
    return backend_name.rpartition(":a")[0] or backend_name


class ActiveJobs:
    """One database's active jobs of this replica: by id, by site, the ones transferring, and the ones due.

    A job is *due* (asked about at the next cycle whatever its site's journal says) when it became active or was
    handed to its backend again (a new backend id).
    """

    def __init__(self) -> None:
        self.docs: dict[str, Doc] = {}
        self.by_site: dict[str | None, dict[str, None]] = {}
        self.transferring: dict[str, None] = {}
        self.due: set[str] = set()

    def __len__(self) -> int:
        return len(self.docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.docs

    def __iter__(self) -> Iterator[str]:
        return iter(self.docs)

    def get(self, doc_id: str) -> Doc | None:
        """The watched form of ``doc_id``, or ``None``."""
        return self.docs.get(doc_id)

    def put(self, doc: Doc) -> None:
        """Watch ``doc`` (its watched form), replacing what was held."""
        doc_id = str(doc["_id"])
        held = self.docs.get(doc_id)
        if held is None or backend_id_of(held) != backend_id_of(doc):
            self.due.add(doc_id)
        if held is not None and held.get("site") != doc.get("site"):
            self._unindex(doc_id, held)
        self.docs[doc_id] = doc
        self.by_site.setdefault(doc.get("site"), {})[doc_id] = None
        if doc.get("status") == TRANSFERRING:
            self.transferring[doc_id] = None
        else:
            self.transferring.pop(doc_id, None)

    def drop(self, doc_id: str) -> None:
        """Stop watching ``doc_id`` (absent ids are ignored)."""
        held = self.docs.pop(doc_id, None)
        if held is not None:
            self._unindex(doc_id, held)
            self.transferring.pop(doc_id, None)
        self.due.discard(doc_id)

    def replace_all(self, docs: list[Doc]) -> None:
        """Watch exactly ``docs`` (a resync); only those new or re-sent become due."""
        wanted = {str(doc["_id"]) for doc in docs}
        for doc_id in [doc_id for doc_id in self.docs if doc_id not in wanted]:
            self.drop(doc_id)
        for doc in docs:
            self.put(doc)

    def take_due(self) -> set[str]:
        """The due jobs, handed over once (jobs made due meanwhile wait for the next cycle)."""
        due, self.due = self.due, set()
        return due

    def _unindex(self, doc_id: str, held: Doc) -> None:
        site = held.get("site")
        jobs = self.by_site.get(site)
        if jobs is not None:
            jobs.pop(doc_id, None)
            if not jobs:
                del self.by_site[site]


@dataclass
class JournalPolling:
    """Where one site's change journal was read up to, and how far the sweep over its jobs has come."""

    backend: Backend
    cursor: str | None = None
    swept_at: float = 0.0
    round: list[str] = field(default_factory=list)
    position: int = 0
    changed: set[str] = field(default_factory=set)

    async def read(self) -> bool:
        """Take the jobs named in the journal since the last read; True if more lines are waiting.

        The first read only places the cursor: the caller then asks about every job once.
        """
        if self.cursor is None:
            self.cursor = (await self.backend.changed_since(None)).cursor
            return False
        changed = await self.backend.changed_since(self.cursor)
        self.cursor = changed.cursor
        self.changed.update(job_id_of(name) for name in changed.backend_ids)
        return changed.more

    def sweep(self, site_jobs: dict[str, None], now: float, gap_s: float, sweep_s: float) -> list[str]:
        """The next slice of the site's jobs, sized so each is taken once per ``sweep_s``; taken every ``gap_s``.

        A round lists the site's jobs when it starts and walks that list: slicing the live set instead (which
        shrinks as jobs end) skipped jobs and shrank every slice, so the last few hundred jobs a journal missed
        took minutes (a slice of 1/24 of what was left every cycle) instead of one ``sweep_s``.
        """
        elapsed = now - self.swept_at
        if not site_jobs or elapsed < gap_s:
            return []
        self.swept_at = now
        if self.position >= len(self.round):
            self.round, self.position = list(site_jobs), 0
        size = math.ceil(len(self.round) * min(elapsed, sweep_s) / sweep_s)
        taken = [job for job in self.round[self.position : self.position + size] if job in site_jobs]
        self.position += size
        return taken

    def ask_again(self, doc_ids: Iterable[str]) -> None:
        """Jobs of a cycle that failed before their state was written: the next cycle asks about them first."""
        self.changed.update(doc_ids)
