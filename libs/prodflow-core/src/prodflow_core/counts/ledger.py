"""Job counts kept from ``_changes``: each batch of changed job documents adjusts the counts by what changed.

The ledger (:class:`~prodflow_core.counts.tables.CountedJob`) holds, per document, what it was counted as. A
change is applied as "this document now counts as X": the counts move by the difference between X and the
ledger's row, in the same transaction that rewrites the row. Applying the same change twice (a batch handed
over again after a crash, before the follower's checkpoint moved) therefore moves nothing: the counts stay
exact through any restart, and the checkpoint may be stored after the counts rather than with them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from prodflow_core.couch.changes import Change
from prodflow_core.couch.database import rev_number
from prodflow_core.counts import statements
from prodflow_core.counts.tables import (
    CampaignCount,
    CountedJob,
    CountsCheckpoint,
    ExperimentCount,
    LabelCount,
    SiteCount,
)
from prodflow_core.sql import upsert_statement

_LEDGER: Table = CountedJob.__table__  # type: ignore[attr-defined]
_LABELS: Table = LabelCount.__table__  # type: ignore[attr-defined]
_CAMPAIGNS: Table = CampaignCount.__table__  # type: ignore[attr-defined]
_SITES: Table = SiteCount.__table__  # type: ignore[attr-defined]
_EXPERIMENTS: Table = ExperimentCount.__table__  # type: ignore[attr-defined]
_CHECKPOINTS: Table = CountsCheckpoint.__table__  # type: ignore[attr-defined]
_CHUNK = 500  # ids per SELECT ... IN (SQLite allows 32,766 variables; PostgreSQL 65,535)

ARCHIVED_MARK = "archived_label"
"""The field of the tombstone that archival leaves where it deleted a job document (servers without ``_purge``)."""


def archival_tombstone(doc_id: str, rev: str, label: str) -> dict[str, Any]:
    """The deletion archival writes for one job document: a tombstone that says the document went to an archive.

    Counters leave such deletions out (:func:`counted_docs`): the job still counts, its ledger row stays, and the
    label's listings, summaries and label list answer as before (from the archive).
    """
    return {"_id": doc_id, "_rev": rev, "_deleted": True, ARCHIVED_MARK: label}


def counted_docs(changes: Iterable[Change]) -> list[tuple[str, Mapping[str, Any] | None]]:
    """``(doc_id, doc)`` of each change for :meth:`JobCounter.apply` (``None`` when deleted), leaving out the
    deletions made by archival (their tombstone carries :data:`ARCHIVED_MARK`)."""
    out: list[tuple[str, Mapping[str, Any] | None]] = []
    for change in changes:
        if not change.deleted:
            out.append((change.id, change.doc))
        elif not (change.doc or {}).get(ARCHIVED_MARK):
            out.append((change.id, None))
    return out


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one job document adds to the counts."""

    experiment: str
    label: str
    module: str
    status: str
    site: str
    campaign_id: str
    events: int
    rev: int

    def same_count(self, other: Contribution) -> bool:
        """True if both add the same to every count (revisions aside)."""
        return (self.experiment, self.label, self.module, self.status, self.site, self.campaign_id, self.events) == (
            other.experiment,
            other.label,
            other.module,
            other.status,
            other.site,
            other.campaign_id,
            other.events,
        )


def contribution_of(doc: Mapping[str, Any]) -> Contribution | None:
    """The contribution of a job document; ``None`` for any other document."""
    if doc.get("type") != "job":
        return None
    return Contribution(
        experiment=str(doc.get("experiment") or ""),
        label=str(doc.get("label") or ""),
        module=str(doc.get("module") or ""),
        status=str(doc.get("status") or ""),
        site=str(doc.get("site") or ""),
        campaign_id=str(doc.get("campaign_id") or ""),
        events=int(doc.get("events") or 0),
        rev=rev_number(doc),
    )


@dataclass
class CountsChange:
    """What one batch moved: count deltas by key, and the labels they touched."""

    labels: dict[tuple[str, str, str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    campaigns: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    sites: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    ledger_put: list[dict[str, Any]] = field(default_factory=list)
    ledger_drop: list[str] = field(default_factory=list)

    def add(self, part: Contribution, sign: int) -> None:
        held = self.labels[(part.experiment, part.label, part.module, part.status)]
        held[0] += sign
        held[1] += sign * part.events
        self.campaigns[(part.campaign_id, part.status)] += sign
        self.sites[(part.site, part.status)] += sign

    @property
    def touched_labels(self) -> set[str]:
        """Labels whose counts moved in this batch."""
        return {key[1] for key, (jobs, events) in self.labels.items() if jobs or events}


def plan_change(
    database: str, ledger: Mapping[str, Contribution], docs: Iterable[tuple[str, Contribution | None]]
) -> CountsChange:
    """The count deltas and ledger writes that bring ``ledger`` to ``docs`` (pure; ``None`` = deleted)."""
    change = CountsChange()
    for doc_id, new in docs:
        old = ledger.get(doc_id)
        if old is not None and new is not None and (new.rev < old.rev or new.same_count(old)):
            if new.rev > old.rev:
                change.ledger_put.append(_ledger_row(database, doc_id, new))
            continue
        if old is not None:
            change.add(old, -1)
        if new is not None:
            change.add(new, +1)
            change.ledger_put.append(_ledger_row(database, doc_id, new))
        elif old is not None:
            change.ledger_drop.append(doc_id)
    return change


def _ledger_row(database: str, doc_id: str, part: Contribution) -> dict[str, Any]:
    return {
        "database": database,
        "doc_id": doc_id,
        "rev": part.rev,
        "experiment": part.experiment,
        "label": part.label,
        "module": part.module,
        "status": part.status,
        "site": part.site,
        "campaign_id": part.campaign_id,
        "events": part.events,
    }


class JobCounter:
    """One owner's kept counts in a SQL database (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner

    async def apply(self, database: str, docs: Sequence[tuple[str, Mapping[str, Any] | None]]) -> CountsChange:
        """Count ``docs`` (``(doc_id, doc)``; ``doc`` ``None`` when deleted) of ``database`` as they are now."""
        latest: dict[str, Contribution | None] = {}
        for doc_id, doc in docs:
            latest[doc_id] = contribution_of(doc) if doc is not None else None
        async with self.engine.begin() as conn:
            ledger = await self._ledger(conn, database, list(latest))
            change = plan_change(database, ledger, latest.items())
            await self._write(conn, database, change)
        return change

    async def _ledger(self, conn: AsyncConnection, database: str, ids: list[str]) -> dict[str, Contribution]:
        out: dict[str, Contribution] = {}
        for start in range(0, len(ids), _CHUNK):
            chosen = {"database": database, "ids": ids[start : start + _CHUNK]}
            for row in (await conn.execute(statements.ledger_rows(), chosen)).mappings():
                out[row["doc_id"]] = Contribution(
                    row["experiment"], row["label"], row["module"], row["status"], row["site"],
                    row["campaign_id"], int(row["events"]), int(row["rev"]),
                )  # fmt: skip
        return out

    async def _write(self, conn: AsyncConnection, database: str, change: CountsChange) -> None:
        if change.ledger_put:
            keys = ("database", "doc_id")
            replace = tuple(name for name in change.ledger_put[0] if name not in keys)
            await conn.execute(upsert_statement(conn.dialect.name, _LEDGER, keys, replace), change.ledger_put)
        for start in range(0, len(change.ledger_drop), _CHUNK):
            ids = change.ledger_drop[start : start + _CHUNK]
            await conn.execute(statements.ledger_drop(), {"database": database, "ids": ids})
        label_rows = [
            {"database": database, "experiment": experiment, "label": label, "module": module, "status": status,
             "owner": self.owner, "jobs": jobs, "events": events}
            for (experiment, label, module, status), (jobs, events) in change.labels.items()
            if jobs or events
        ]  # fmt: skip
        await self._add(conn, _LABELS, ("database", "label", "module", "status"), ("jobs", "events"), label_rows)
        campaign_rows = [
            {"owner": self.owner, "database": database, "campaign_id": campaign, "status": status, "jobs": jobs}
            for (campaign, status), jobs in change.campaigns.items()
            if jobs
        ]
        await self._add(conn, _CAMPAIGNS, ("owner", "database", "campaign_id", "status"), ("jobs",), campaign_rows)
        site_rows = [
            {"owner": self.owner, "database": database, "site": site, "status": status, "jobs": jobs}
            for (site, status), jobs in change.sites.items()
            if jobs
        ]
        await self._add(conn, _SITES, ("owner", "database", "site", "status"), ("jobs",), site_rows)
        experiment_rows = self._experiment_rows(database, change)
        await self._add(conn, _EXPERIMENTS, ("owner", "database", "experiment", "status"), ("jobs",), experiment_rows)

    def _experiment_rows(self, database: str, change: CountsChange) -> list[dict[str, Any]]:
        """The batch's label deltas summed per (experiment, status)."""
        summed: dict[tuple[str, str], int] = defaultdict(int)
        for (experiment, _label, _module, status), (jobs, _events) in change.labels.items():
            summed[(experiment, status)] += jobs
        return [
            {"owner": self.owner, "database": database, "experiment": experiment, "status": status, "jobs": jobs}
            for (experiment, status), jobs in summed.items()
            if jobs
        ]

    @staticmethod
    async def _add(
        conn: AsyncConnection, table: Table, keys: tuple[str, ...], sums: tuple[str, ...], rows: list[dict[str, Any]]
    ) -> None:
        """Add ``rows`` to ``table`` (inserting missing keys), then drop the touched rows that reached zero."""
        if not rows:
            return
        await conn.execute(upsert_statement(conn.dialect.name, table, keys, (), sums), rows)
        touched = [tuple(row[k] for k in keys) for row in rows]
        for start in range(0, len(touched), _CHUNK // len(keys)):
            part = touched[start : start + _CHUNK // len(keys)]
            await conn.execute(statements.drop_zero_rows(table, keys), {"touched": part})

    # --- the follower's checkpoint -------------------------------------------------------------------------

    async def load_checkpoint(self, database: str) -> str | None:
        """The sequence this owner's counts of ``database`` are complete to; ``None`` if never counted."""
        c = _CHECKPOINTS.c
        async with self.engine.connect() as conn:
            query = select(c.seq).where(c.owner == self.owner, c.database == database)
            seq = (await conn.execute(query)).scalar_one_or_none()
        return None if seq is None else str(seq)

    async def save_checkpoint(self, database: str, seq: str) -> None:
        """Store ``seq`` (after the counts of every change up to it were committed)."""
        async with self.engine.begin() as conn:
            upsert = upsert_statement(conn.dialect.name, _CHECKPOINTS, ("owner", "database"), ("seq",))
            await conn.execute(upsert, {"owner": self.owner, "database": database, "seq": seq})


@dataclass(frozen=True)
class CountsCheckpoints:
    """A follower's checkpoint kept beside the counts (a :class:`~prodflow_core.couch.changes.CheckpointStore`).

    A database whose counts were never built has no checkpoint, so its follower starts from the beginning and
    counts every document once, whatever other checkpoints the service kept before.
    """

    counter: JobCounter
    database: str

    async def load(self) -> str | None:
        return await self.counter.load_checkpoint(self.database)

    async def save(self, seq: str) -> None:
        await self.counter.save_checkpoint(self.database, seq)
