"""``/api/events``: Server-Sent Events relayed from prodflow-events, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from gateway_stack import ADMIN_TOKEN, Stack
from prodflow_core.couch.client import CouchClient
from prodflow_core.events import EventPublisher, make_event

pytestmark = pytest.mark.integration


def _read_sse(
    stack: Stack, token: str, limit: int, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> list[dict[str, object]]:
    frames: list[dict[str, object]] = []
    with (
        httpx.Client(base_url=stack.url, timeout=20) as client,
        client.stream(
            "GET",
            "/api/events",
            params={"limit": str(limit), **(params or {})},
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frame: dict[str, object] = {}
        for line in response.iter_lines():
            if line.startswith("id: "):
                frame["id"] = line[4:]
            elif line.startswith("event: "):
                frame["type"] = line[7:]
            elif line.startswith("data: "):
                frame["data"] = json.loads(line[6:])
            elif line == "" and "data" in frame:
                frames.append(frame)
                frame = {}
    return frames


async def _publish(stack: Stack, n: int, experiment: str = "snoplus", prefix: str = "e") -> list[str]:
    async with CouchClient(stack.settings.couchdb_url) as couch:
        publisher = EventPublisher(couch.db(stack.settings.events_db), "/services/test")
        ids = []
        for i in range(n):
            event = make_event(
                "job.completed", publisher.source, subject=f"{prefix}{i}", experiment=experiment, data={"i": i}
            )
            await publisher.publish(event)
            ids.append(event.id)
        return ids


async def test_resume_with_last_event_id_delivers_exactly_the_later_events(stack: Stack) -> None:
    await _publish(stack, 5, prefix="first")
    everything = _read_sse(stack, ADMIN_TOKEN, limit=1_000_000, params={"since": "0", "limit": "5"})
    subjects = [f["data"]["subject"] for f in everything]  # type: ignore[index]
    assert subjects[:5] == [f"first{i}" for i in range(5)]
    resume_after = str(everything[1]["id"])
    resumed = _read_sse(stack, ADMIN_TOKEN, limit=3, headers={"Last-Event-ID": resume_after})
    assert [f["data"]["subject"] for f in resumed] == ["first2", "first3", "first4"]  # type: ignore[index]
    assert all(f["type"] == "job.completed" for f in resumed)


async def test_live_events_arrive_and_other_experiments_are_hidden(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        created = await admin.post(
            "/api/auth/tokens", json={"user": "lena", "roles": ["reader"], "experiments": ["legend"]}
        )
    reader = asyncio.create_task(asyncio.to_thread(_read_sse, stack, created.json()["token"], 2))
    await asyncio.sleep(1.0)  # the stream starts "now": publish after the client connected
    await _publish(stack, 2, experiment="snoplus", prefix="hidden")
    await _publish(stack, 2, experiment="legend", prefix="live")
    received = await asyncio.wait_for(reader, timeout=20)
    assert [f["data"]["subject"] for f in received] == ["live0", "live1"]  # type: ignore[index]


def test_a_resume_point_that_is_not_a_sequence_is_a_400_problem(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Last-Event-ID": "evt-01JDNOTASEQUENCE"}
    answer = httpx.get(f"{stack.url}/api/events", headers=headers, timeout=10)
    assert answer.status_code == 400 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == "Last-Event-ID"
