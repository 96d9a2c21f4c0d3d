"""Fixtures of request-api's tests: the app on a real CouchDB-API server, a real SMTP server on loopback."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers module beside this file, under --import-mode=importlib

from prodflow_core.couch.server import free_port
from request_api_support import Api, SmtpServer, make_settings, running


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running SMTP server on a loopback port."""
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """An SMTP server on a reserved port, not started yet (an outage until the test starts it)."""
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
async def api(tmp_path: Path, couch_url: str, smtp: SmtpServer) -> AsyncIterator[Api]:
    """request-api with a working SMTP server."""
    async with running(make_settings(tmp_path, couch_url, smtp.port)) as started:
        yield started
