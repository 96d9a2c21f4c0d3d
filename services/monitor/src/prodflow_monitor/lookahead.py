"""Counting a small label's changes before the job feed's backlog of other labels' documents reaches them.

The job feed hands changes over in the database's order. A 1-job campaign filed right after a 100,000-job one
was counted only once the monitor had read the big one's documents: its job completed in half a second, its
summary said so ~10 s later (CouchDB 3.5, these 2 cores). While the feed is behind, a :class:`Lookahead` reads
the changes past it without documents (a job's id names its label: ids and revisions are cheap to read), and
counts at once every label that has only a few changes there, reading those revisions by id.

Why the counts stay exact and a label is never complete too soon:
- counting is by the ledger (``prodflow_core.counts.ledger``): a document counts as its newest revision seen,
  whoever applies it and in whatever order, and the feed applying the same revision later moves nothing;
- a label is counted ahead only if every one of its changes since the feed's position has been. The first look
  starts where the feed has handled everything; each look goes on from the previous one's end; a label with too
  many changes in one look (the big campaign) is left to the feed until it has caught up. So a label counted
  ahead is exact as of the end of the last look, as the feed's labels are as of its position;
- the revisions counted are those of the look, never newer ones, so a label's documents are all counted as of
  the same moment (a job resubmitted after the look, and its new document, are both seen later).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.couch.changes import Change, ChangesFollower
from prodflow_core.jobdocs import parse_job_id
from prodflow_core.waiting import first_of

FEW_CHANGES = 200
"""A label with more changes than this in one look is left to the feed (until it has caught up)."""
PAGE = 10_000
"""Changes per ``_changes`` read of a look."""
_log = logging.getLogger("prodflow.monitor.lookahead")


class Lookahead:
    """Counts the labels with few changes past a job feed that is behind (see the module docstring).

    ``count`` handles changes with their documents as the feed's handler would (counts, label checks);
    ``owns`` says which job ids are this replica's.
    """

    def __init__(
        self,
        db: CouchDatabase,
        feed: ChangesFollower,
        count: Callable[[list[Change]], Awaitable[None]],
        owns: Callable[[str], bool],
    ) -> None:
        self._db = db
        self._feed = feed
        self._count = count
        self._owns = owns
        self._since: str | None = None
        self._left: set[str] = set()

    @property
    def name(self) -> str:
        """The job database's name."""
        return self._db.name

    async def step(self) -> int:
        """One look, if the feed is behind; returns how many changes were counted ahead."""
        if not self._feed.behind or self._feed.since is None:
            self._since = None  # caught up: the feed is past everything looked at
            self._left.clear()
            return 0
        rows, end = await self._rows_past(self._since or self._feed.since)
        changes = await self._with_docs(self._few_per_label(rows))
        if changes:
            await self._count(changes)
        self._since = end
        return len(changes)

    async def follow(self, stop: asyncio.Event, every_s: float) -> None:
        """Look every ``every_s`` seconds until ``stop`` is set; a failed look is tried again at the next."""
        while not stop.is_set():
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.warning("looking past the %s feed failed; trying again", self._db.name, exc_info=True)
            await first_of(stop, timeout_s=every_s)

    async def _rows_past(self, since: str) -> tuple[list[dict[str, Any]], str]:
        rows: list[dict[str, Any]] = []
        while True:
            batch = await self._db.changes(since=since, limit=PAGE)
            rows += batch.results
            since = batch.last_seq
            if len(batch.results) < PAGE:
                return rows, since

    def _few_per_label(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of the labels that have few of them and were never left to the feed; the others are left."""
        by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            label = _label_of(str(row["id"]))
            if label is not None and self._owns(str(row["id"])):
                by_label[label].append(row)
        chosen: list[dict[str, Any]] = []
        for label, label_rows in by_label.items():
            if label in self._left:
                continue
            if len(label_rows) > FEW_CHANGES or any(row.get("deleted") for row in label_rows):
                self._left.add(label)
                continue
            chosen += label_rows
        return chosen

    async def _with_docs(self, rows: list[dict[str, Any]]) -> list[Change]:
        """The rows as changes with their documents at the look's revisions. A label with one the server no
        longer has (compacted since) is left to the feed."""
        if not rows:
            return []
        fetched = await self._db.revisions([(str(row["id"]), _rev(row)) for row in rows])
        found = {(str(doc.get("_id")), str(doc.get("_rev"))): doc for doc in fetched}
        self._left |= {_label_of(str(row["id"])) or "" for row in rows if (str(row["id"]), _rev(row)) not in found}
        return [
            Change.from_row({**row, "doc": found[str(row["id"]), _rev(row)]})
            for row in rows
            if _label_of(str(row["id"])) not in self._left
        ]


def _label_of(doc_id: str) -> str | None:
    try:
        return parse_job_id(doc_id)[0]
    except ValueError:
        return None


def _rev(row: dict[str, Any]) -> str:
    return str(row["changes"][0]["rev"]) if row.get("changes") else ""
