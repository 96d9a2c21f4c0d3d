"""pytest fixtures (a pytest plugin): a real CouchDB-API server for the session, fresh databases per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from prodflow_core.couch.client import CouchClient, CouchDatabase
from prodflow_core.couch.server import couch_server


@pytest.fixture(scope="session")
def couch_url() -> Iterator[str]:
    """URL of the session's CouchDB-API server (started here unless ``PRODFLOW_COUCHDB_URL`` is set)."""
    with couch_server(in_memory=True) as url:
        yield url


@pytest.fixture
async def couch(couch_url: str) -> AsyncIterator[CouchClient]:
    """A client of the session's server."""
    async with CouchClient(couch_url) as client:
        yield client


@pytest.fixture
async def fresh_db(couch: CouchClient) -> AsyncIterator[Callable[[str], Awaitable[CouchDatabase]]]:
    """Factory of uniquely named, created databases, dropped after the test."""
    made: list[CouchDatabase] = []

    async def make(prefix: str = "test") -> CouchDatabase:
        db = couch.db(f"{prefix}-{uuid.uuid4().hex[:12]}")
        await db.ensure()
        made.append(db)
        return db

    yield make
    for db in made:
        await db.drop()
