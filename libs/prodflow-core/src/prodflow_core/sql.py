"""SQL through sqlmodel and async SQLAlchemy: SQLite by default, PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from sqlalchemy import Column, Connection, Table, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.schema import CreateColumn, CreateIndex
from sqlalchemy.sql.schema import ScalarElementColumnDefault
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def normalise_url(url: str) -> str:
    """Use the async drivers: ``sqlite://`` → ``sqlite+aiosqlite://``, ``postgresql://`` → ``+asyncpg``."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # WAL lets readers run beside the one writer; busy_timeout waits for the lock instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (SQLite files get WAL and a busy timeout)."""
    url = normalise_url(url)
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


async def create_tables(engine: AsyncEngine, tables: Sequence[Table] | None = None) -> None:
    """Create ``tables`` (default: every SQLModel table imported) if they are missing.

    A service names its own tables: other services' models may be imported in the same process.
    """
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: SQLModel.metadata.create_all(sync, tables=tables))
        await conn.run_sync(lambda sync: add_missing_columns(sync, tables))
        await conn.run_sync(lambda sync: add_missing_indexes(sync, tables))


def add_missing_columns(conn: Connection, tables: Sequence[Table] | None = None) -> list[str]:
    """Add the columns a model gained since its table was created (``ALTER TABLE ... ADD COLUMN``); returns them.

    The only schema change prodflow makes in place: a new column must be nullable or have a scalar default, which
    fills the rows already there. Anything else (renames, type changes) needs a migration of its own.
    """
    added = []
    for table in tables if tables is not None else SQLModel.metadata.sorted_tables:
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                name = conn.dialect.identifier_preparer.quote(table.name)
                conn.execute(text(f"ALTER TABLE {name} ADD COLUMN {_column_ddl(conn, column)}"))
                added.append(f"{table.name}.{column.name}")
    return added


def add_missing_indexes(conn: Connection, tables: Sequence[Table] | None = None) -> list[str]:
    """Create the indexes a model gained since its table was created (``create_all`` makes them only with the
    table); returns their names."""
    added = []
    for table in tables if tables is not None else SQLModel.metadata.sorted_tables:
        present = {index["name"] for index in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in present:
                conn.execute(CreateIndex(index, if_not_exists=True))
                added.append(str(index.name))
    return added


def _column_ddl(conn: Connection, column: Column[Any]) -> str:
    ddl = str(CreateColumn(column).compile(dialect=conn.dialect))
    default = column.default.arg if isinstance(column.default, ScalarElementColumnDefault) else None
    if default is None:
        if not column.nullable:
            raise RuntimeError(f"cannot add {column.table.name}.{column.name}: NOT NULL without a scalar default")
        return ddl
    literal = text(":v").bindparams(v=default).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return f"{ddl} DEFAULT {literal}"


@asynccontextmanager
async def sql_database(app: FastAPI, url: str, tables: Sequence[Table] | None = None) -> AsyncIterator[AsyncEngine]:
    """A service's SQL database for the life of its app.

    Opens the engine, creates ``tables``, sets ``app.state.sessions`` and the ``sql`` health check, and disposes
    of the engine at the end.
    """
    engine = make_engine(url)
    try:
        await create_tables(engine, tables)
        app.state.sessions = session_maker(engine)

        async def sql_alive() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        app.state.health_checks["sql"] = sql_alive
        yield engine
    finally:
        await engine.dispose()


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with maker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]


def upsert_into(conn: AsyncConnection | AsyncEngine, table: Table) -> Any:
    """An INSERT into ``table`` that supports ``ON CONFLICT`` (``on_conflict_do_update``) on SQLite and PostgreSQL."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@functools.cache
def upsert_statement(
    dialect: str, table: Table, keys: tuple[str, ...], replace: tuple[str, ...], add: tuple[str, ...] = ()
) -> Any:
    """An INSERT of rows into ``table`` that, where a row with the same ``keys`` exists, sets its ``replace`` columns
    to the new row's and adds the new row's ``add`` columns to its own (SQLite or PostgreSQL ``ON CONFLICT``).

    Built once per shape, for statements run again and again: an upsert's ``excluded`` alias copies every column
    of the table into objects that refer to one another, which only the cyclic garbage collector frees (whose
    collections stall a service's requests), and the CPU to build and key it again was spent on every call.
    """
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    excluded = statement.excluded
    changes = {name: excluded[name] for name in replace} | {name: table.c[name] + excluded[name] for name in add}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
