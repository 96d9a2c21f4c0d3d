"""Fixtures of cycle-runner's tests: example repositories, a served app on a real CouchDB-API server."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers module beside this file, under --import-mode=importlib

from cycle_runner_support import ENV_STORE, identity_headers
from prodflow_core.sql import make_engine, session_maker
from prodflow_core.testing import serving
from prodflow_cycle_runner.app import create_app
from prodflow_cycle_runner.examples import make_example_repositories
from prodflow_cycle_runner.models import CycleRow, FileRow, RunRow, StepRow
from prodflow_cycle_runner.settings import CycleRunnerSettings
from queue_support import Sessions


@dataclass(frozen=True)
class Service:
    """A running cycle-runner."""

    url: str
    settings: CycleRunnerSettings


@pytest.fixture(scope="session")
def example_repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The example dataflow and metadata as local git repositories (file:// URLs)."""
    return make_example_repositories(tmp_path_factory.mktemp("example-repos"))


@pytest.fixture(scope="session")
def service(
    couch_url: str, tmp_path_factory: pytest.TempPathFactory, example_repos: dict[str, str]
) -> Iterator[Service]:
    """cycle-runner served on a free port; environments go to the repository's shared store; managers may build
    cycles from the example repositories."""
    data = tmp_path_factory.mktemp("cycle-runner")
    settings = CycleRunnerSettings(
        repositories=[example_repos["dataflow"].rpartition("/")[0] + "/"],
        couchdb_url=couch_url,
        data_dir=data,
        production_root=data / "production",
        env_store=ENV_STORE,
        events_db="prodflow-events",
        progress_interval_s=0.5,
        cancel_grace_s=5.0,
        max_cores=4,  # one core of it reserved: a run gets at most 3
        log_json=False,
    )
    with serving(create_app(settings)) as url:
        yield Service(url, settings)


@pytest.fixture
async def client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """A manager of experiment ``legend``."""
    headers = identity_headers(service.settings.identity_secret)
    async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=60) as http:
        yield http


def cycle_body(name: str, repos: dict[str, str], **extra: object) -> dict[str, object]:
    """A creation request for the example."""
    return {
        "name": name,
        "dataflow": {"url": repos["dataflow"], "ref": "main"},
        "metadata": {"url": repos["metadata"], "ref": "main"},
        **extra,
    }


@pytest.fixture
def production_root(service: Service) -> Path:
    """Where the service keeps cycles."""
    return service.settings.root()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    """An SQLite database of cycle-runner's tables for a run queue without the service."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as conn:
        tables = [CycleRow.__table__, RunRow.__table__, StepRow.__table__, FileRow.__table__]  # type: ignore[attr-defined]
        await conn.run_sync(lambda c: CycleRow.metadata.create_all(c, tables=tables))
    yield session_maker(engine)
    await engine.dispose()
