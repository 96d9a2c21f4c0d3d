"""Fixtures of the CLI tests: a real gateway (uvicorn on loopback) on a real CouchDB-API server."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cli_support beside this file, under --import-mode=importlib

from cli_support import ADMIN_TOKEN, Cli, Gateway
from prodflow_core.couch.server import free_port
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app
from prodflow_gateway.settings import GatewaySettings


@pytest.fixture(scope="module")
def gateway(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose services are not running (so health is degraded and proxied calls are 502)."""
    data = tmp_path_factory.mktemp("gateway")
    settings = GatewaySettings(
        couchdb_url=couch_url,
        data_dir=data,
        log_json=False,
        events_db=f"events-{uuid.uuid4().hex[:8]}",
        bootstrap_token=ADMIN_TOKEN,
        request_api_url=f"http://127.0.0.1:{free_port()}",
        submitter_url=f"http://127.0.0.1:{free_port()}",
        monitor_url=f"http://127.0.0.1:{free_port()}",
        cycle_runner_url=f"http://127.0.0.1:{free_port()}",
        sse_heartbeat_s=0.5,
    )
    with serving(create_app(settings)) as url:
        yield Gateway(url, settings)


@pytest.fixture
def cli(gateway: Gateway, tmp_path: Path) -> Cli:
    """``prodflow`` with the admin token, its config file in this test's folder."""
    return Cli(url=gateway.url, config=tmp_path / "config.json")
