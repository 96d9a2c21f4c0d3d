"""Short reads by index on SQLite, run in the event loop's thread with the standard library's ``sqlite3``.

Through SQLAlchemy's async engine one read hops to aiosqlite's thread several times (cursor, execute, fetch,
close, the rollback when the connection goes back to the pool) and runs SQLAlchemy's execution machinery: a
51-row page of the counts' ledger cost 1.06 ms of CPU that way and 0.05 ms straight on ``sqlite3`` (2,000 reads
here). In WAL mode a reader does not wait for the writer, so a read of a few rows by index may run in the loop's
thread. One that would wait anyway (a lock held past :data:`BUSY_MS`) or fails goes the async way, and so does
every read of PostgreSQL or of an in-memory SQLite database. Only statements whose columns need no conversion
from what SQLite stores (text, integers) belong here.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Select, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

_log = logging.getLogger("prodflow.sqlite_reads")

BUSY_MS = 50
"""How long a direct read waits for a lock before it goes the async way instead (which waits longer)."""


class DirectReads:
    """A private ``sqlite3`` connection to one database file, for reads only (``query_only``), in autocommit: each
    statement sees what was committed before it.

    A statement left half-read would hold its snapshot, and every later read on the connection would see the
    database as it was then. So a read that fails in any way drops the connection, and a commit through the
    engine (:meth:`committed`) makes the next read open a new one (0.45 ms of CPU here, once per commit rather
    than per read). One CI run showed a dashboard summary that stayed stale for 45 s with a single connection
    kept for good. It was not reproduced; a half-read statement is the one way found to cause it, and these two
    rules close it (the test holds one open across a commit).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._reopen = False
        self.watchers: list[Callable[[str, Sequence[Any]], None]] = []
        """Called with each statement and its values before it runs (tests: which reads, which index)."""

    def rows(self, compiled: SQLCompiler, params: Mapping[str, Any]) -> list[tuple[Any, ...]] | None:
        """The rows of ``compiled`` with ``params``, or ``None`` if it could not run here (then read the async
        way)."""
        values = compiled.construct_params(dict(params)) or {}
        arguments = [values[name] for name in compiled.positiontup or ()]
        for watcher in self.watchers:
            watcher(compiled.string, arguments)
        try:
            cursor = self._connect().execute(compiled.string, arguments)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        except Exception as exc:  # whatever failed, the async way reads it again (or raises it)
            _log.debug("direct read of %s failed (%s): reading the async way", self.path, exc)
            self.close()
            return None

    def committed(self) -> None:
        """The engine committed a transaction: the next read opens a new connection."""
        self._reopen = True

    def _connect(self) -> sqlite3.Connection:
        if self._reopen:
            self._reopen = False
            self.close()
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            connection.execute("PRAGMA query_only=ON")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        """Close the connection (the next read opens another)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


_readers: weakref.WeakKeyDictionary[AsyncEngine, DirectReads | None] = weakref.WeakKeyDictionary()


def direct_reads(engine: AsyncEngine) -> DirectReads | None:
    """The direct reader of ``engine``'s SQLite file, made once; ``None`` for any other database."""
    if engine not in _readers:
        url = engine.url
        database = url.database or ""
        on_file = url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not url.query
        _readers[engine] = reader = DirectReads(database) if on_file else None
        if reader is not None:
            event.listen(engine.sync_engine, "commit", lambda _connection: reader.committed())
            weakref.finalize(engine, reader.close)
    return _readers[engine]


@functools.lru_cache(maxsize=128)
def _compiled(statement: Select[Any], dialect: Dialect) -> SQLCompiler:
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not a SELECT: {statement}")
    return compiled


async def fetch_rows(engine: AsyncEngine, statement: Select[Any], params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` (built once, with bound parameters) with ``params``: straight on ``sqlite3``
    where it can (see the module docstring), else through ``engine``."""
    reader = direct_reads(engine)
    if reader is not None:
        rows = reader.rows(_compiled(statement, engine.dialect), params)
        if rows is not None:
            return rows
    async with engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(statement, dict(params))).all()]
