"""For tests: the SELECTs an app runs on one table (through the engine or straight on sqlite3, see
:mod:`prodflow_core.sqlite_reads`), and SQLite's plan for each (is it entered at an index?)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_core.counts import count_tables, keep_listing_indexes
from prodflow_core.sql import create_tables, make_engine
from prodflow_core.sqlite_reads import direct_reads


@asynccontextmanager
async def counts_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``url`` with the kept counts' tables made as the monitor keeps them (with the listings'
    indexes), disposed afterwards."""
    engine = make_engine(url)
    try:
        await create_tables(engine, count_tables())
        await keep_listing_indexes(engine, kept=True)
        yield engine
    finally:
        await engine.dispose()


@dataclass
class TableReads:
    """The SELECTs of one table seen while recording: ``(statement, parameters)``."""

    engine: AsyncEngine
    table: str
    seen: list[tuple[str, Any]] = field(default_factory=list)

    def _record(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {self.table}" in statement:
            self.seen.append((statement, params))

    @property
    def parameters(self) -> list[tuple[Any, ...]]:
        """The bound values of each SELECT seen."""
        return [tuple(params) for _, params in self.seen]

    async def plans(self) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` of each SELECT seen, its lines joined by `` | ``."""
        out = []
        async with self.engine.connect() as conn:
            for statement, params in self.seen:
                rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)).all()
                out.append(" | ".join(str(row[-1]) for row in rows))
        return out


@asynccontextmanager
async def reads_of(engine: AsyncEngine, table: str) -> AsyncIterator[TableReads]:
    """Record the SELECTs of ``table`` that ``engine`` runs inside the ``async with``."""
    reads = TableReads(engine, table)
    direct = direct_reads(engine)

    def record_direct(statement: str, values: Sequence[Any]) -> None:
        reads._record(None, None, statement, tuple(values))

    event.listen(engine.sync_engine, "before_cursor_execute", reads._record)
    if direct is not None:
        direct.watchers.append(record_direct)
    try:
        yield reads
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", reads._record)
        if direct is not None:
            direct.watchers.remove(record_direct)
