"""Fixtures of submitter's tests: the app on a real CouchDB-API server, a FAKE request-api on loopback."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers module beside this file, under --import-mode=importlib

from submitter_support import JOB_COMMAND, Api, fake_request_api_served, make_settings, running


@pytest.fixture(scope="session")
def request_api() -> Iterator[tuple[str, dict[str, bytes], list[str]]]:
    """A FAKE request-api: catalog commands for WaterBi214Run and TeLoadedBipo212, jobs.json files by request id."""
    commands = {("snoplus", "WaterBi214Run"): JOB_COMMAND, ("snoplus", "TeLoadedBipo212"): JOB_COMMAND}
    jobs_files: dict[str, bytes] = {}
    with fake_request_api_served(commands, jobs_files) as (url, calls):
        yield url, jobs_files, calls


@pytest.fixture
async def api(
    tmp_path: Path, couch_url: str, request_api: tuple[str, dict[str, bytes], list[str]]
) -> AsyncIterator[Api]:
    """The submitter with its embedded ``local`` site (4 jobs at once)."""
    async with running(make_settings(tmp_path, couch_url, request_api[0])) as started:
        yield started
