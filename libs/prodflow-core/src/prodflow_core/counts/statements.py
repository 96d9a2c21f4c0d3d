"""The SQL statements that keep the counts, built once, with bound parameters (upserts:
:func:`prodflow_core.sql.upsert_statement`).

Built again for every batch, each ``IN`` list made a new statement and each upsert a new ``excluded`` alias: every
batch (and every checkpoint) left ~400 objects that only Python's cyclic garbage collector frees, whose
collections stall a service's requests, and the CPU to build and key each statement again.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Delete, Select, Table, bindparam, delete, select, tuple_

from prodflow_core.counts.tables import CountedJob

_LEDGER: Table = CountedJob.__table__  # type: ignore[attr-defined]


@functools.cache
def ledger_rows() -> Select[Any]:
    """The ledger rows of ``database`` whose ``doc_id`` is one of ``ids`` (parameters: ``database``, ``ids``)."""
    c = _LEDGER.c
    return select(_LEDGER).where(c.database == bindparam("database"), c.doc_id.in_(bindparam("ids", expanding=True)))


@functools.cache
def ledger_drop() -> Delete:
    """Delete the ledger rows of ``database`` whose ``doc_id`` is one of ``ids``."""
    c = _LEDGER.c
    return delete(_LEDGER).where(c.database == bindparam("database"), c.doc_id.in_(bindparam("ids", expanding=True)))


@functools.cache
def drop_zero_rows(table: Table, keys: tuple[str, ...]) -> Delete:
    """Delete the rows of ``table`` with ``jobs == 0`` whose ``keys`` are one of ``touched`` (tuples of values)."""
    key_columns = tuple_(*(table.c[name] for name in keys))
    return delete(table).where(table.c.jobs == 0, key_columns.in_(bindparam("touched", expanding=True)))
