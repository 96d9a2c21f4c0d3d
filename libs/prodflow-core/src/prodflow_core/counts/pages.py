"""Pages of the ledger: which job documents a listing shows, read by keyset from the ledger's indexes.

A :class:`LedgerRange` is one key range of the :class:`~prodflow_core.counts.tables.CountedJob` rows of a
database: the rows whose ``fixed`` columns hold the given values, ordered by ``order`` (ending in ``doc_id``,
so keys are unique). The ledger has an index on ``(database, *fixed, *order)`` for every range the monitor's
listing asks for, so a page reads the index entries it shows and resumes after the last key shown: no OFFSET,
and no row outside ``fixed`` (e.g. another experiment's) is walked.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, Table, bindparam, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_core.counts.tables import CountedJob
from prodflow_core.sqlite_reads import fetch_rows

_LEDGER: Table = CountedJob.__table__  # type: ignore[attr-defined]

_Shape = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
"""What a range's statement depends on: its key's columns, its order, and the columns it fixes to a value."""


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


@functools.lru_cache(maxsize=64)
def _statement(shape: _Shape, prefix: bool, after: bool) -> Select[Any]:
    """The SELECT of a range of ``shape``, with bound parameters (built once: see :func:`ledger_query`)."""
    columns, order, filtered = shape
    c = _LEDGER.c
    query = select(*(c[name] for name in columns)).where(c.database == bindparam("database"))
    for number, name in enumerate(filtered):
        query = query.where(c[name] == bindparam(f"value_{number}"))
    if prefix:
        # ">=" lets the index seek; comparing the id's first characters is exact whatever the column's collation
        id_prefix = bindparam("prefix", type_=c.doc_id.type)
        prefix_of_id = func.substr(c.doc_id, 1, bindparam("prefix_length", type_=Integer))
        query = query.where(c.doc_id >= id_prefix, prefix_of_id == id_prefix)
    if after:  # a row-value comparison the index serves
        bounds = [bindparam(f"after_{number}", type_=c[name].type) for number, name in enumerate(order)]
        if len(order) == 1:
            query = query.where(c[order[0]] > bounds[0])
        else:
            query = query.where(tuple_(*(c[name] for name in order)) > tuple_(*bounds))
    return query.order_by(*(c[name] for name in order)).limit(bindparam("limit", type_=Integer))


def ledger_query(
    database: str, part: LedgerRange, after: Sequence[str] | None, limit: int
) -> tuple[Select[Any], dict[str, Any]]:
    """The SELECT of :func:`ledger_keys` and its parameters.

    A statement is built once per shape of range (which columns, a prefix or not, a page after a key or not):
    building and keying one per call cost as much CPU as running it."""
    filtered = (*part.fixed, *part.also)
    shape = (part.columns, part.order, tuple(name for name, _ in filtered))
    values: dict[str, Any] = {"database": database, "limit": limit}
    values.update({f"value_{number}": value for number, (_, value) in enumerate(filtered)})
    if part.id_prefix is not None:
        values.update(prefix=part.id_prefix, prefix_length=len(part.id_prefix))
    if after is not None:
        values.update({f"after_{number}": value for number, value in enumerate(after[len(part.fixed) :])})
    return _statement(shape, part.id_prefix is not None, after is not None), values


async def ledger_keys(
    engine: AsyncEngine, database: str, part: LedgerRange, after: Sequence[str] | None, limit: int
) -> list[list[str]]:
    """The keys (values of ``part.columns``) of the first ``limit`` rows of ``database`` in ``part`` after the key
    ``after`` (``None``: from the start); the document id is a key's last value."""
    rows = await fetch_rows(engine, *ledger_query(database, part, after, limit))
    return [[str(value) for value in row] for row in rows]
