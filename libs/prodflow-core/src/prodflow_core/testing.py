"""pytest fixtures (a pytest plugin): a real CouchDB-API server for the session, fresh databases per test."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import uvicorn
from starlette.types import ASGIApp

from prodflow_core.couch.client import CouchClient, CouchDatabase
from prodflow_core.couch.server import LocalCouchServer, couch_server, free_port, wants_local_server


@pytest.fixture(scope="session")
def couch_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalCouchServer | None]]:
    """The session's CouchDB-API server: its URL, and the local process when this plugin started one.

    A local server's data and log stay in pytest's temporary folder (``pouchdb-server.log``).
    """
    if wants_local_server():
        with LocalCouchServer(data_dir=tmp_path_factory.mktemp("couch"), in_memory=True) as server:
            yield server.url, server
    else:
        with couch_server() as url:
            yield url, None


@pytest.fixture(scope="session")
def couch_url(couch_session: tuple[str, LocalCouchServer | None]) -> str:
    """URL of the session's CouchDB-API server (started here unless ``PRODFLOW_COUCHDB_URL`` is set)."""
    return couch_session[0]


@pytest.fixture(autouse=True)
def _couch_watchdog(request: pytest.FixtureRequest) -> None:
    """Before a test that uses the server: if the local server died, say so with its log, and start it again.

    The test that was running when it died has failed already; the restart keeps later tests from failing
    only because of it.
    """
    if "couch_url" not in request.fixturenames:
        return
    _url, server = request.getfixturevalue("couch_session")
    if server is None or server.proc is None or server.proc.poll() is None:
        return
    tail = server.log_path.read_text(errors="replace")[-3000:] if server.log_path.exists() else ""
    warnings.warn(
        f"the CouchDB-API server died (exit {server.proc.returncode}); restarting it. Log:\n{tail}", stacklevel=1
    )
    server.proc = None
    server.start()


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
