"""Counting a small label's changes before the job feed's backlog of other labels' documents reaches them.

The job feed hands changes over in the database's order. A 1-job campaign filed right after a 100,000-job one
was counted only once the monitor had read the big one's documents: its job completed in half a second, its
summary said so ~10 s later (CouchDB 3.5, these 2 cores). While the feed is behind, a :class:`Lookahead` follows
the changes made from then on, without documents (a job's id names its label), and counts at once every label
that has only a few changes there and few documents: all of the label's documents, read by id range. Their
``job.*`` events are announced then too, before the label's ``label.completed``; the feed, reaching the same
states later, does not announce them again (nor an older state of a job, read before). The backlog itself is
never read twice (PouchDB Server reads a change's document even when it is not asked for). More changes than a
look reads are a burst (a big campaign being stored), which it skips; a small label created inside one is
counted whole as soon as the monitor moves one of its jobs, or hears from the submitter that it submitted one
(:meth:`Lookahead.note`).

Why the counts stay exact and a label is never complete too soon:
- counting is by the ledger (``prodflow_core.counts.ledger``): a document counts as its newest revision seen,
  whoever applies it and in whatever order, and the feed applying the same revision later moves nothing;
- a label counted ahead is counted whole: every document it has, as the feed's labels are counted from the
  documents as they are when it reads them. A job added to it later is a change the next look sees;
- a label with many changes in one look, many documents or a deletion is left to the feed until it has caught
  up: its counts move only with the feed, as without a lookahead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.couch.changes import Change, ChangesFollower
from prodflow_core.couch.database import seq_number
from prodflow_core.jobdocs import label_id_range, parse_job_id
from prodflow_core.waiting import first_of

TRAILING = 1000
"""Changes a feed may trail its database by and still count as keeping up."""
FEW_CHANGES = 200
"""A label with more changes than this in one look is left to the feed (until it has caught up)."""
FEW_DOCS = 1000
"""A label with more documents than this is left to the feed."""
WINDOW = 2000
"""Changes one look reads at most. More since the last look are a burst (a big campaign being stored): the look
starts again at the database's end, and the burst's labels are the feed's, except those :meth:`Lookahead.note`
names (a small one among the rest is counted whole at its next change after the burst)."""
LOOK_DOCS = 5000
"""Documents one look reads at most (labels are read whole): the labels past it are read at the next look."""
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
        self._noted: set[str] = set()
        self._feed_was_at: str | None = None
        self.behind = False
        """Whether the feed was behind at the last look: its last batch was full, or it trailed the database."""

    @property
    def name(self) -> str:
        """The job database's name."""
        return self._db.name

    async def step(self) -> int:
        """One look, if the feed is behind; returns how many documents were counted ahead."""
        self.behind, now = await self._feed_behind()
        if not self.behind:
            self._since = None  # caught up: the feed is past everything looked at
            self._left.clear()
            self._noted.clear()
            return 0
        labels, self._noted = self._noted - self._left, set()
        now = now or await self._db.update_seq()
        if self._since is not None and seq_number(now) - seq_number(self._since) <= WINDOW:
            batch = await self._db.changes(since=self._since, limit=WINDOW)
            labels.update(self._labels_with_few(batch.results))
            now = batch.last_seq
        # else the first look, or after a burst: from here on (only the labels noted are counted now)
        changes: list[Change] = []
        for label in sorted(labels):
            if len(changes) >= LOOK_DOCS:
                self._noted.add(label)
            else:
                changes += await self._whole_label(label, now)
        if changes:
            await self._count(changes)
        self._since = now
        return len(changes)

    def note(self, label: str) -> None:
        """Count ``label`` whole at the next look, if the feed is still behind then: this replica just moved one
        of its jobs, or heard it was submitted. So a small label whose changes came in a burst (created while a
        big campaign was being stored) is not left to the feed."""
        if self.behind:
            self._noted.add(label)

    async def _feed_behind(self) -> tuple[bool, str | None]:
        """Whether the feed is behind (and the database's position, if it was read): its last batch was full,
        or it moved since the last look and trails the database by more than :data:`TRAILING` changes. A
        continuous feed that trails the writes (PouchDB Server's while it stores a big campaign) never brings a
        full batch; an idle database is not asked (no request while nothing moves)."""
        since, was_at = self._feed.since, self._feed_was_at
        self._feed_was_at = since
        if self._feed.behind:
            return True, None
        if since is None or (since == was_at and not self.behind):
            return False, None
        now = await self._db.update_seq()
        return seq_number(now) - seq_number(since) > TRAILING, now

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

    def _labels_with_few(self, rows: list[dict[str, Any]]) -> list[str]:
        """The labels with few of ``rows`` and no deletion among them (those with many are left to the feed)."""
        by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            label = _label_of(str(row["id"]))
            if label is not None and self._owns(str(row["id"])):
                by_label[label].append(row)
        chosen = []
        for label, label_rows in by_label.items():
            if label in self._left:
                continue
            if len(label_rows) > FEW_CHANGES or any(row.get("deleted") for row in label_rows):
                self._left.add(label)
            else:
                chosen.append(label)
        return chosen

    async def _whole_label(self, label: str, seq: str) -> list[Change]:
        """Every document of ``label`` (this replica's), as changes at ``seq``; none if it has many (then it is
        left to the feed)."""
        found = await self._db.all_docs(**label_id_range(label), include_docs=True, limit=FEW_DOCS + 1)
        if len(found.rows) > FEW_DOCS:
            self._left.add(label)
            return []
        return [
            Change(id=str(row["id"]), seq=seq, deleted=False, doc=row["doc"])
            for row in found.rows
            if row.get("doc") and self._owns(str(row["id"]))
        ]


def _label_of(doc_id: str) -> str | None:
    try:
        return parse_job_id(doc_id)[0]
    except ValueError:
        return None
