"""The way a user reaches cycle-runner: bearer token at the gateway, the event stream as SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Service, cycle_body
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app as create_gateway
from prodflow_gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
TOKEN = "pf_cycle-runner-test-token"


@pytest.fixture(scope="module")
def gateway(service: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = GatewaySettings(
        couchdb_url=service.settings.couchdb_url,
        data_dir=tmp_path_factory.mktemp("gateway"),
        identity_secret=service.settings.identity_secret,
        events_db=service.settings.events_db,
        bootstrap_token=TOKEN,
        cycle_runner_url=service.url,
        log_json=False,
        sse_heartbeat_s=0.5,
    )
    with serving(create_gateway(settings)) as url:
        yield url


async def _events_until(http: httpx.AsyncClient, ready: asyncio.Event, run_id: list[str]) -> list[dict[str, Any]]:
    """Follow ``/api/events`` (SSE) until the run in ``run_id`` finishes or fails."""
    seen: list[dict[str, Any]] = []
    params = {"types": "cycle.run.started,cycle.run.progress,cycle.run.finished,cycle.run.failed"}
    async with http.stream("GET", "/api/events", params=params, timeout=300) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            ready.set()
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if run_id and event["subject"] == run_id[0]:
                seen.append(event)
                if event["type"].endswith((".finished", ".failed")):
                    return seen
    return seen


async def test_cycle_through_the_gateway(gateway: str, example_repos: dict[str, str]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=60) as http:
        created = await http.post("/api/cycles", json=cycle_body("via-gateway", example_repos))
        assert created.status_code == 201, created.text
        install = (await http.post("/api/cycles/via-gateway/software", json={})).json()
        for _ in range(3000):
            state = (await http.get(f"/api/cycles/via-gateway/runs/{install['id']}")).json()["state"]
            if state not in {"queued", "running"}:
                break
            await asyncio.sleep(0.3)
        assert state == "succeeded"

        ready, run_id = asyncio.Event(), []
        watcher = asyncio.create_task(_events_until(http, ready, run_id))
        await asyncio.wait_for(ready.wait(), 30)
        run = await http.post("/api/cycles/via-gateway/runs", json={"targets": ["all-l200-p03-r000-cal-raw.gen"]})
        assert run.status_code == 202, run.text
        run_id.append(run.json()["id"])
        events = await asyncio.wait_for(watcher, 300)
        types = [e["type"].removeprefix("org.prodflow.") for e in events]
        assert types[0] == "cycle.run.started" and types[-1] == "cycle.run.finished", types
        assert events[-1]["data"]["progress"]["done"] == 2

        log = await http.get(f"/api/cycles/via-gateway/runs/{run_id[0]}/log")
        assert "2 of 2 steps (100%) done" in log.text
        assert (await http.get("/api/cycles/via-gateway")).json()["state"] == "ready"
