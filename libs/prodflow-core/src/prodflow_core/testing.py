"""pytest fixtures (a pytest plugin): a real CouchDB-API server for the session, fresh databases per test.

``PRODFLOW_TEST_COUCH`` chooses the session's server for the whole run: ``pouchdb`` (PouchDB Server), ``couchdb``
(Apache CouchDB 3.5 from ``<repo root>/../shared/couchdb`` or ``PRODFLOW_COUCHDB3_DIST``); unset, the order of
:func:`prodflow_core.couch.server.couch_server` (``PRODFLOW_COUCHDB_URL``, Docker, PouchDB Server).

Tests marked ``both_couch`` that use the ``couch``/``fresh_db`` fixtures run twice: against the session's server
and against CouchDB 3.5 (started once, on first use; skipped with the reason where the release is absent).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Protocol

import pytest
import uvicorn
from starlette.types import ASGIApp

from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.couchdb3 import LocalCouchDB3Server, couchdb3_dist, couchdb3_missing_reason
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.server import LocalCouchServer, couch_server, free_port, wants_local_server

TEST_COUCH_ENV = "PRODFLOW_TEST_COUCH"
TEST_COUCH_CHOICES = ("pouchdb", "couchdb")
BOTH_COUCH_MARKER = "both_couch"
LocalServer = LocalCouchServer | LocalCouchDB3Server
_started: list[LocalServer] = []  # local servers of this session, watched by _couch_watchdog


def chosen_couch() -> str | None:
    """The session server asked for with ``PRODFLOW_TEST_COUCH`` (``pouchdb``/``couchdb``), or ``None``."""
    value = os.environ.get(TEST_COUCH_ENV, "").strip().lower()
    return value or None


@functools.cache
def _session_server_id() -> str:
    """How the session's server is named in the ids of ``both_couch`` tests."""
    return chosen_couch() or ("pouchdb" if wants_local_server() else "session")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse an unknown ``PRODFLOW_TEST_COUCH``, or ``couchdb`` without the release (rather than skip it all)."""
    choice = chosen_couch()
    if choice is not None and choice not in TEST_COUCH_CHOICES:
        raise pytest.UsageError(f"{TEST_COUCH_ENV}={choice!r}: use one of {', '.join(TEST_COUCH_CHOICES)}")
    if choice == "couchdb" and couchdb3_dist() is None:
        raise pytest.UsageError(f"{TEST_COUCH_ENV}=couchdb: {couchdb3_missing_reason()}")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run ``both_couch`` tests against the session's server and CouchDB 3.5 (once if they are the same)."""
    if "couch_target" not in metafunc.fixturenames or metafunc.definition.get_closest_marker(BOTH_COUCH_MARKER) is None:
        return
    session_id = _session_server_id()
    if session_id == "couchdb":
        return  # the session's server is CouchDB 3.5 already
    metafunc.parametrize("couch_target", ["session", "couchdb3"], indirect=True, ids=[session_id, "couchdb3"])


def _start(server: LocalServer) -> LocalServer:
    server.start()
    _started.append(server)
    return server


@pytest.fixture(scope="session")
def couch_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalServer | None]]:
    """The session's CouchDB-API server: its URL, and the local process when this plugin started one.

    A local server's data and log stay in pytest's temporary folder (``pouchdb-server.log``, ``couchdb.log``).
    """
    choice = chosen_couch()
    server: LocalServer
    if choice == "couchdb":
        server = LocalCouchDB3Server(data_dir=tmp_path_factory.mktemp("couchdb3"))
    elif choice == "pouchdb" or wants_local_server():
        server = LocalCouchServer(data_dir=tmp_path_factory.mktemp("couch"), in_memory=True)
    else:
        with couch_server() as url:
            yield url, None
        return
    try:
        yield _start(server).url, server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def couch_url(couch_session: tuple[str, LocalServer | None]) -> str:
    """URL of the session's CouchDB-API server (started here unless ``PRODFLOW_COUCHDB_URL`` is set)."""
    return couch_session[0]


@pytest.fixture(scope="session")
def couchdb3_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (with admin credentials) of a real CouchDB 3.5, started on first use and kept for the session.

    The session's own server when ``PRODFLOW_TEST_COUCH=couchdb``; skipped, with the reason, without the release.
    """
    if chosen_couch() == "couchdb":
        yield request.getfixturevalue("couch_url")
        return
    if couchdb3_dist() is None:
        pytest.skip(couchdb3_missing_reason())
    server = LocalCouchDB3Server(data_dir=tmp_path_factory.mktemp("couchdb3"))
    try:
        yield _start(server).url
    finally:
        server.stop()


@pytest.fixture
def couch_target(request: pytest.FixtureRequest) -> str:
    """The URL the ``couch`` fixture connects to: the session's server, or CouchDB 3.5 for ``both_couch`` tests."""
    if getattr(request, "param", "session") == "couchdb3":
        return str(request.getfixturevalue("couchdb3_url"))
    return str(request.getfixturevalue("couch_url"))


@pytest.fixture(autouse=True)
def _couch_watchdog(request: pytest.FixtureRequest) -> None:
    """Before a test that uses a server: if a local server died, say so with its log, and start it again.

    The test that was running when it died has failed already; the restart keeps later tests from failing
    only because of it.
    """
    if not {"couch_url", "couch_target", "couchdb3_url"} & set(request.fixturenames):
        return
    for server in _started:
        if server.proc is None or server.proc.poll() is None:
            continue
        tail = server.log_path.read_text(errors="replace")[-3000:] if server.log_path.exists() else ""
        warnings.warn(
            f"the CouchDB-API server {type(server).__name__} died (exit {server.proc.returncode}); "
            f"restarting it. Log:\n{tail}",
            stacklevel=1,
        )
        server.proc = None
        server.start()


@pytest.fixture
async def couch(couch_target: str) -> AsyncIterator[CouchClient]:
    """A client of the session's server (of CouchDB 3.5 in the ``couchdb3`` run of a ``both_couch`` test)."""
    async with CouchClient(couch_target) as client:
        yield client


class MakeDb(Protocol):
    """The ``fresh_db`` factory: ``await fresh_db("prefix")``, ``shards=1`` as for the event stream."""

    def __call__(self, prefix: str = "test", *, shards: int | None = None) -> Awaitable[CouchDatabase]: ...


@pytest.fixture
async def fresh_db(couch: CouchClient) -> AsyncIterator[MakeDb]:
    """Factory of uniquely named, created databases, dropped after the test."""
    made: list[CouchDatabase] = []

    async def make(prefix: str = "test", *, shards: int | None = None) -> CouchDatabase:
        db = couch.db(f"{prefix}-{uuid.uuid4().hex[:12]}")
        await db.ensure(shards=shards)
        made.append(db)
        return db

    yield make
    for db in made:
        await db.drop()


@contextlib.contextmanager
def serving(app: ASGIApp, *, port: int | None = None, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread (lifespan included); yields its URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"app did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)


from prodflow_core.testing_postgres import postgres_url  # noqa: E402, F401 - registered with this plugin
from prodflow_core.testing_slurm import slurm  # noqa: E402, F401 - the Slurm fixture, registered with this plugin
