"""The record of each output the monitor registers: which job and attempt wrote it, made when it is copied.

A row is written after the copy to the storage element verified and before the job document says
``completed``: a monitor killed in between copies the outputs again on restart and the row is written again
(an upsert by URL), so every registered output has its row. Lookups by URL, by (file name, adler32) and by job
are single index reads, whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.provenance import FileRecord
from prodflow_core.sql import upsert_statement
from sqlalchemy import BigInteger, Column, Index, Select, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel


class OutputRecord(SQLModel, table=True):
    """One output file on a storage element and the job attempt that wrote it."""

    __tablename__ = "output_record"
    __table_args__ = (
        Index("ix_output_record_file", "basename", "adler32"),
        Index("ix_output_record_job", "database", "job_id"),
        Index("ix_output_record_label", "experiment", "label", "url"),
    )

    url: str = Field(primary_key=True, max_length=2000)
    basename: str = Field(max_length=500)
    name: str = Field(max_length=1000)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    adler32: str = Field(max_length=8)
    database: str = Field(max_length=200)
    job_id: str = Field(max_length=400)
    attempt: int
    experiment: str = Field(max_length=100)
    label: str = Field(max_length=100)
    registered_at: str = Field(max_length=40)

    def file(self) -> FileRecord:
        """The file as the provenance answer shows it."""
        return FileRecord(
            name=self.basename, url=self.url, size=self.size, adler32=self.adler32, recorded_at=self.registered_at
        )


_RECORDS: Table = OutputRecord.__table__  # type: ignore[attr-defined]
_C = _RECORDS.c


def provenance_tables() -> list[Table]:
    """The monitor's provenance tables, for ``sql_database``."""
    return [_RECORDS]


@dataclass(frozen=True)
class Written:
    """An output just copied by one attempt of a job."""

    database: str
    job_id: str
    attempt: int
    experiment: str
    label: str
    name: str
    url: str
    size: int
    adler32: str


class OutputRecords:
    """Writes and finds output records in the monitor's SQL database (shared by replicas)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(self, outputs: Sequence[Written], at: str) -> None:
        """Record ``outputs`` (a URL written again, by a retry or after a crash, takes the newest writer)."""
        table = _RECORDS
        rows = [
            {
                "url": out.url, "basename": out.name.rsplit("/", 1)[-1], "name": out.name, "size": out.size,
                "adler32": out.adler32, "database": out.database, "job_id": out.job_id, "attempt": out.attempt,
                "experiment": out.experiment, "label": out.label, "registered_at": at,
            }
            for out in outputs
        ]  # fmt: skip
        if not rows:
            return
        replace = tuple(key for key in rows[0] if key != "url")
        statement = upsert_statement(self.engine.dialect.name, table, ("url",), replace)
        async with self.engine.begin() as conn:
            await conn.execute(statement, rows)  # executemany: compiled once, kept in SQLAlchemy's cache

    async def by_url(self, url: str) -> OutputRecord | None:
        """The record of the file at ``url``."""
        found = await self._all(select(_RECORDS).where(_C.url == url))
        return found[0] if found else None

    async def by_file(self, name: str, adler32: str) -> list[OutputRecord]:
        """Records of files called ``name`` (last path part) with checksum ``adler32``; several if copies exist."""
        return await self._all(select(_RECORDS).where(_C.basename == name, _C.adler32 == adler32.lower()).limit(20))

    async def of_job(self, database: str | None, job_id: str) -> list[OutputRecord]:
        """Records of the outputs of one job (in ``database``, or in any)."""
        query = select(_RECORDS).where(_C.job_id == job_id)
        if database is not None:
            query = query.where(_C.database == database)
        return await self._all(query.order_by(_C.url).limit(1000))

    async def of_label(self, experiment: str, label: str, *, after: str = "", limit: int = 5000) -> list[OutputRecord]:
        """One page of a label's records in URL order, after the URL ``after``."""
        query = (
            select(_RECORDS)
            .where(_C.experiment == experiment, _C.label == label, _C.url > after)
            .order_by(_C.url)
            .limit(limit)
        )
        return await self._all(query)

    async def _all(self, query: Select[Any]) -> list[OutputRecord]:
        async with self.engine.connect() as conn:
            result = await conn.execute(query)
            return [OutputRecord.model_validate(dict(row._mapping)) for row in result]
