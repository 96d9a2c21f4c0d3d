"""``/api/events``: Server-Sent Events relayed from prodflow-events, resumable with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from typing import Any

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
    async with CouchClient(stack.couch_url) as couch:
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


async def _follow(
    stack: Stack,
    limit: int,
    *,
    token: str = ADMIN_TOKEN,
    connected: asyncio.Event | None = None,
    resume: str | None = None,
) -> list[dict[str, Any]]:
    """Frames of one SSE client (``connected`` is set once the stream began), until ``limit`` events."""
    headers = {"Authorization": f"Bearer {token}", **({"Last-Event-ID": resume} if resume else {})}
    frames: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=30) as client,
        client.stream("GET", "/api/events", params={"limit": str(limit)}, headers=headers) as response,
    ):
        assert response.status_code == 200
        frame: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith("retry:") and connected is not None:
                connected.set()
            elif line.startswith("id: "):
                frame["id"] = line[4:]
            elif line.startswith("data: "):
                frame["data"] = json.loads(line[6:])
            elif line == "" and "data" in frame:
                frames.append(frame)
                frame = {}
    return frames


def _subjects(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"]["subject"] for f in frames]


async def _clients(stack: Stack, n: int, limit: int, **kwargs: Any) -> list[asyncio.Task[list[dict[str, Any]]]]:
    """``n`` SSE clients reading ``limit`` events each, returned once every stream began."""
    ready = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(_follow(stack, limit, connected=r, **kwargs)) for r in ready]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 30)
    return tasks


def _client_reads(stack: Stack, mark: int) -> list[str]:
    """``_changes`` reads by SSE clients since request ``mark``: every read but the window follower's long-polls."""
    assert stack.proxy is not None
    return [f"{s.method} {s.path} {s.query}" for s in stack.proxy.changes_reads(mark) if not s.is_longpoll]


async def test_idle_clients_are_served_from_the_window_without_reading_couchdb(counted_stack: Stack) -> None:
    stack = counted_stack
    assert stack.proxy is not None
    tasks = await _clients(stack, 40, limit=5)
    mark = len(stack.proxy.seen)
    await _publish(stack, 5, prefix="w")  # no more than the window holds
    received = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert all(_subjects(frames) == [f"w{i}" for i in range(5)] for frames in received)
    assert _client_reads(stack, mark) == []
    # Only the follower reads, on the one continuous feed it opened before: no request at all, whatever the clients.
    assert stack.proxy.changes_reads(mark) == []


async def test_resume_inside_the_window_is_served_from_memory(counted_stack: Stack) -> None:
    stack = counted_stack
    assert stack.proxy is not None
    (task,) = await _clients(stack, 1, limit=4)
    await _publish(stack, 4, prefix="m")
    first = await asyncio.wait_for(task, 30)
    mark = len(stack.proxy.seen)
    resumed = await asyncio.wait_for(_follow(stack, 2, resume=first[1]["id"]), 30)
    assert _subjects(resumed) == ["m2", "m3"]
    assert _client_reads(stack, mark) == []  # neither the resume point's check nor the events


async def test_resume_from_before_the_window_catches_up_then_follows_live(counted_stack: Stack) -> None:
    stack = counted_stack
    assert stack.proxy is not None
    async with httpx.AsyncClient(base_url=stack.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        created = await admin.post(
            "/api/auth/tokens", json={"user": "ida", "roles": ["reader"], "experiments": ["legend"]}
        )
    (watch,) = await _clients(stack, 1, limit=12)
    for i in range(6):  # twelve changes: the window (5) holds the last five only
        await _publish(stack, 1, experiment="legend", prefix=f"old-legend{i}-")
        await _publish(stack, 1, experiment="snoplus", prefix=f"old-snoplus{i}-")
    old = await asyncio.wait_for(watch, 30)
    assert len(old) == 12
    mark = len(stack.proxy.seen)
    everything, legend = await _clients(stack, 1, limit=11 + 4, resume=old[0]["id"]) + await _clients(
        stack, 1, limit=5 + 2, token=created.json()["token"], resume=old[0]["id"]
    )
    await _publish(stack, 2, experiment="legend", prefix="live-legend")
    await _publish(stack, 2, experiment="snoplus", prefix="live-snoplus")
    expected = [*_subjects(old)[1:], "live-legend0", "live-legend1", "live-snoplus0", "live-snoplus1"]
    assert _subjects(await asyncio.wait_for(everything, 30)) == expected
    assert _subjects(await asyncio.wait_for(legend, 30)) == [s for s in expected if "legend" in s]
    assert _client_reads(stack, mark)  # the changes before the window came from CouchDB
