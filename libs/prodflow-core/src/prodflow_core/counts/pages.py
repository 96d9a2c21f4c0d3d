"""Pages of the ledger: which job documents a listing shows, read by keyset from the ledger's indexes.

A :class:`LedgerRange` is one key range of the :class:`~prodflow_core.counts.tables.CountedJob` rows of a
database: the rows whose ``fixed`` columns hold the given values, ordered by ``order`` (ending in ``doc_id``,
so keys are unique). The ledger has an index on ``(database, *fixed, *order)`` for every range the monitor's
listing asks for, so a page reads the index entries it shows and resumes after the last key shown: no OFFSET,
and no row outside ``fixed`` (e.g. another experiment's) is walked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_core.counts.tables import CountedJob

_LEDGER: Table = CountedJob.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LedgerRange:
    """One key range of one database's ledger rows (see the module docstring)."""

    fixed: tuple[tuple[str, str], ...]
    """``(column, value)`` pairs every row of the range holds: the index's columns after ``database``."""
    order: tuple[str, ...] = ("doc_id",)
    """The index's columns after ``fixed``, ending in ``doc_id``: the order of the range."""
    also: tuple[tuple[str, str], ...] = ()
    """Further ``(column, value)`` pairs, checked on the rows the range walks (not in the index)."""
    id_prefix: str | None = None
    """Only ids that start with this (the index seeks to it)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns of a key: ``fixed`` then ``order``."""
        return (*(name for name, _ in self.fixed), *self.order)

    def holds(self, key: object) -> bool:
        """True if ``key`` is a key of this range (e.g. the last key of a page, brought back in a cursor)."""
        return (
            isinstance(key, list)
            and len(key) == len(self.columns)
            and all(isinstance(part, str) for part in key)
            and key[: len(self.fixed)] == [value for _, value in self.fixed]
        )


def _after(part: LedgerRange, key: Sequence[str]) -> ColumnElement[bool]:
    """Rows of ``part`` whose key is greater than ``key`` (a row-value comparison the index serves)."""
    columns = [_LEDGER.c[name] for name in part.order]
    values = list(key[len(part.fixed) :])
    if len(columns) == 1:
        return columns[0] > values[0]
    return tuple_(*columns) > tuple_(*values)


def ledger_query(database: str, part: LedgerRange, after: Sequence[str] | None, limit: int) -> Select[Any]:
    """The SELECT of :func:`ledger_keys`."""
    c = _LEDGER.c
    query = select(*(c[name] for name in part.columns)).where(c.database == database)
    for name, value in (*part.fixed, *part.also):
        query = query.where(c[name] == value)
    if part.id_prefix is not None:
        # ">=" lets the index seek; the prefix test is exact whatever the column's collation
        query = query.where(c.doc_id >= part.id_prefix, c.doc_id.startswith(part.id_prefix, autoescape=True))
    if after is not None:
        query = query.where(_after(part, after))
    return query.order_by(*(c[name] for name in part.order)).limit(limit)


async def ledger_keys(
    engine: AsyncEngine, database: str, part: LedgerRange, after: Sequence[str] | None, limit: int
) -> list[list[str]]:
    """The keys (values of ``part.columns``) of the first ``limit`` rows of ``database`` in ``part`` after the key
    ``after`` (``None``: from the start); the document id is a key's last value."""
    async with engine.connect() as conn:
        rows = (await conn.execute(ledger_query(database, part, after, limit))).all()
    return [[str(value) for value in row] for row in rows]
