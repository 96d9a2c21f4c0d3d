"""The monitor's SQL record of archived labels (shared by replicas): each label's archival state, and the index
of its archived jobs (where each document lies in the archive, and what the label's reads need of it).

States of an archival: ``archiving`` (files being written) → ``written`` (files and manifest complete, index
full) → ``removing`` (documents being purged or deleted) → ``archived``; a restore: ``restoring`` → ``restored``
(the index is dropped; the record stays, so that the documents put back are not announced as news). Each step can
be repeated: a killed operation is resumed by asking for it again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Table, Text, bindparam, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from prodflow_monitor.archive.files import Member

ARCHIVING, WRITTEN, REMOVING, ARCHIVED = "archiving", "written", "removing", "archived"
RESTORING, RESTORED = "restoring", "restored"
_CHUNK = 500


class LabelArchive(SQLModel, table=True):
    """One label's archival: where its archive is and how far the operation got."""

    __tablename__ = "label_archive"

    label: str = Field(primary_key=True, max_length=100)
    experiment: str = Field(max_length=100)
    state: str = Field(max_length=20)
    folder: str = Field(max_length=2000)
    method: str = Field(default="", max_length=20)
    jobs: int = Field(sa_column=Column(BigInteger, nullable=False))
    done: int = Field(sa_column=Column(BigInteger, nullable=False))
    error: str = Field(default="", sa_column=Column(Text, nullable=False))
    by: str = Field(max_length=200)
    created_at: str = Field(max_length=40)
    updated_at: str = Field(max_length=40)


class ArchivedJob(SQLModel, table=True):
    """One archived job document: its member of the archive file, and what listings, .exactly and manifests read."""

    __tablename__ = "archived_job"
    __table_args__ = (Index("ix_archived_job_label", "label", "database", "doc_id"),)

    database: str = Field(primary_key=True, max_length=200)
    doc_id: str = Field(primary_key=True, max_length=400)
    label: str = Field(max_length=100)
    rev: str = Field(max_length=200)
    module: str = Field(max_length=200)
    run: int = Field(sa_column=Column(BigInteger, nullable=False))
    pass_number: int
    status: str = Field(max_length=40)
    events: int = Field(sa_column=Column(BigInteger, nullable=False))
    outputs: str = Field(sa_column=Column(Text, nullable=False))
    member_offset: int = Field(sa_column=Column(BigInteger, nullable=False))
    member_size: int


_LABELS: Table = LabelArchive.__table__  # type: ignore[attr-defined]
_JOBS: Table = ArchivedJob.__table__  # type: ignore[attr-defined]


def archive_tables() -> list[Table]:
    """The tables archival adds to the monitor's SQL database."""
    return [_LABELS, _JOBS]


_ARCHIVE_OF = select(_LABELS).where(_LABELS.c.label == bindparam("label"))
"""Built once: every summary asks it (building a statement per call costs as much as running it)."""


@dataclass(frozen=True)
class ArchiveRecord:
    """A label's archival as the SQL record holds it."""

    label: str
    experiment: str
    state: str
    folder: str
    method: str
    jobs: int
    done: int
    error: str
    by: str
    created_at: str
    updated_at: str

    def public(self) -> dict[str, Any]:
        """The record as ``GET /api/labels/{label}/archive`` shows it."""
        return {
            "label": self.label,
            "experiment": self.experiment,
            "state": self.state,
            "archived": self.state == ARCHIVED,
            "folder": self.folder,
            "method": self.method or None,
            "progress": {"done": self.done, "jobs": self.jobs},
            "error": self.error or None,
            "by": self.by,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class ArchivedRow:
    """One :class:`ArchivedJob` row."""

    database: str
    doc_id: str
    rev: str
    module: str
    run: int
    pass_number: int
    status: str
    events: int
    outputs: list[dict[str, Any]]
    member: Member


async def load_archive(engine: AsyncEngine, label: str) -> ArchiveRecord | None:
    """The archival record of ``label``, or ``None``."""
    async with engine.connect() as conn:
        row = (await conn.execute(_ARCHIVE_OF, {"label": label})).mappings().first()
    return None if row is None else ArchiveRecord(**{name: row[name] for name in ArchiveRecord.__dataclass_fields__})


async def start_archive(engine: AsyncEngine, record: ArchiveRecord) -> None:
    """Create (or reset) the record of ``record.label`` and forget any index rows of an earlier attempt."""
    async with engine.begin() as conn:
        await conn.execute(delete(_JOBS).where(_JOBS.c.label == record.label))
        await conn.execute(delete(_LABELS).where(_LABELS.c.label == record.label))
        await conn.execute(_LABELS.insert().values(**record.__dict__))


async def set_archive(engine: AsyncEngine, label: str, **values: Any) -> None:
    """Update fields of the record of ``label`` (``state``, ``done``, ``error``, ``method``, ``updated_at``)."""
    async with engine.begin() as conn:
        await conn.execute(update(_LABELS).where(_LABELS.c.label == label).values(**values))


async def drop_archive(engine: AsyncEngine, label: str) -> None:
    """Forget the archival of ``label`` and its index (after a restore)."""
    async with engine.begin() as conn:
        await conn.execute(delete(_JOBS).where(_JOBS.c.label == label))
        await conn.execute(delete(_LABELS).where(_LABELS.c.label == label))


async def finish_restore(engine: AsyncEngine, label: str, at: str) -> None:
    """The documents are back: drop the label's index and mark its record ``restored``."""
    async with engine.begin() as conn:
        await conn.execute(delete(_JOBS).where(_JOBS.c.label == label))
        await conn.execute(
            update(_LABELS).where(_LABELS.c.label == label).values(state=RESTORED, error="", updated_at=at)
        )


async def archival_starts(engine: AsyncEngine, labels: Collection[str]) -> dict[str, str]:
    """``{label: created_at}`` of the archival records of ``labels`` (those ever archived)."""
    if not labels:
        return {}
    query = select(_LABELS.c.label, _LABELS.c.created_at).where(_LABELS.c.label.in_(sorted(labels)))
    async with engine.connect() as conn:
        return {str(label): str(at) for label, at in (await conn.execute(query)).all()}


def index_row(database: str, label: str, doc: dict[str, Any], member: Member) -> dict[str, Any]:
    """The :class:`ArchivedJob` row of one archived job document."""
    return {
        "database": database,
        "doc_id": str(doc["_id"]),
        "label": label,
        "rev": str(doc["_rev"]),
        "module": str(doc.get("module") or ""),
        "run": int(doc.get("run") or 0),
        "pass_number": int(doc.get("pass") or 0),
        "status": str(doc.get("status") or ""),
        "events": int(doc.get("events") or 0),
        "outputs": json.dumps(doc.get("outputs") or [], sort_keys=True),
        "member_offset": member.offset,
        "member_size": member.size,
    }


async def add_index_rows(engine: AsyncEngine, rows: Sequence[dict[str, Any]]) -> None:
    """Insert index rows (of one member: one transaction)."""
    if rows:
        async with engine.begin() as conn:
            await conn.execute(_JOBS.insert(), list(rows))


def _row(row: Any) -> ArchivedRow:
    return ArchivedRow(
        database=str(row["database"]),
        doc_id=str(row["doc_id"]),
        rev=str(row["rev"]),
        module=str(row["module"]),
        run=int(row["run"]),
        pass_number=int(row["pass_number"]),
        status=str(row["status"]),
        events=int(row["events"]),
        outputs=list(json.loads(row["outputs"])),
        member=Member(int(row["member_offset"]), int(row["member_size"])),
    )


async def index_page(engine: AsyncEngine, label: str, after: tuple[str, str] | None, limit: int) -> list[ArchivedRow]:
    """Up to ``limit`` index rows of ``label`` in (database, doc_id) order, after the key ``after``."""
    c = _JOBS.c
    query = select(_JOBS).where(c.label == label)
    if after is not None:
        query = query.where(tuple_(c.database, c.doc_id) > tuple_(*after))
    query = query.order_by(c.database, c.doc_id).limit(limit)
    async with engine.connect() as conn:
        return [_row(row) for row in (await conn.execute(query)).mappings()]


async def index_rows(engine: AsyncEngine, database: str, doc_ids: Sequence[str]) -> dict[str, ArchivedRow]:
    """The index rows of ``doc_ids`` of ``database`` that are archived, by id."""
    c = _JOBS.c
    out: dict[str, ArchivedRow] = {}
    async with engine.connect() as conn:
        for start in range(0, len(doc_ids), _CHUNK):
            query = select(_JOBS).where(c.database == database, c.doc_id.in_(list(doc_ids[start : start + _CHUNK])))
            out.update({str(row["doc_id"]): _row(row) for row in (await conn.execute(query)).mappings()})
    return out


async def index_stats(engine: AsyncEngine, label: str) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
    """``{database: {module: {status: {"jobs": n, "events": e}}}}`` of ``label``'s archived jobs."""
    c = _JOBS.c
    query = (
        select(c.database, c.module, c.status, func.count(), func.sum(c.events))
        .where(c.label == label)
        .group_by(c.database, c.module, c.status)
    )
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = defaultdict(lambda: defaultdict(dict))
    async with engine.connect() as conn:
        for database, module, status, jobs, events in (await conn.execute(query)).all():
            out[str(database)][str(module)][str(status)] = {"jobs": int(jobs), "events": int(events or 0)}
    return {database: dict(modules) for database, modules in out.items()}
