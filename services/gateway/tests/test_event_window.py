"""The gateway's in-memory window of the event stream, and SSE streams served from it."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from prodflow_core.couch.changes import Change
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.server import free_port
from prodflow_core.events import EventPublisher, make_event
from prodflow_core.identity import Identity
from prodflow_core.testing import MakeDb
from prodflow_gateway.events import UNAVAILABLE, Entry, EventWindow, sse_stream, wait_for

ADMIN = Identity("admin", frozenset({"*"}), frozenset({"admin"}))


def _change(seq: str, n: int) -> Change:
    doc = make_event("job.completed", "/services/test", subject=f"s{n}").document()
    return Change(id=doc["_id"], seq=seq, deleted=False, doc=doc)


def _seq(n: int) -> str:
    return f"{n}-g1AAAA{'x' * (n % 7)}"  # CouchDB 3's shape: the window must never compare them


def test_the_window_keeps_the_last_changes_and_finds_positions_by_sequence_only() -> None:
    window = EventWindow(size=3)
    window.start("0-g1start")
    window.extend(_change(_seq(n), n) for n in range(1, 6))
    assert len(window) == 3 and window.last_seq == _seq(5)
    assert window.after(_seq(1)) is None  # evicted
    assert [e.seq for e in window.after(_seq(2)) or []] == [_seq(3), _seq(4), _seq(5)]  # the newest evicted one
    assert [e.seq for e in window.after(_seq(4)) or []] == [_seq(5)]
    assert window.after(_seq(5)) == []
    assert window.after("0-g1start") is None and not window.holds("4")
    assert [e.seq for e in window.after(_seq(3), limit=1) or []] == [_seq(4)]


def test_the_window_keeps_at_most_max_bytes_of_frames_but_always_the_newest_change() -> None:
    frames = {n: len(Entry.of(_change(_seq(n), n)).frame) for n in range(1, 6)}
    window = EventWindow(size=100, max_bytes=frames[3] + frames[4] + frames[5])
    window.start("0-g1start")
    window.extend(_change(_seq(n), n) for n in range(1, 6))
    assert [e.seq for e in window.after(_seq(2)) or []] == [_seq(3), _seq(4), _seq(5)]
    assert window.after(_seq(1)) is None  # evicted: a client there reads CouchDB until it joins the window
    assert window.frame_bytes == frames[3] + frames[4] + frames[5]
    tiny = EventWindow(size=100, max_bytes=1)
    tiny.start("0-g1start")
    tiny.extend(_change(_seq(n), n) for n in range(1, 4))
    assert [e.seq for e in tiny.after(_seq(2)) or []] == [_seq(3)] and tiny.frame_bytes == frames[3]


async def test_waiters_cancelled_from_outside_leave_the_window_working() -> None:
    # Starlette cancels a disconnected client's stream through an anyio cancel scope, which cancels it again at
    # every await; the old bell's lock was once left held that way and every stream froze.
    window = EventWindow(size=100)
    window.start("0")
    rng = random.Random(1)
    seqs = iter(range(1, 10**9))

    async def writer() -> None:
        while True:
            n = next(seqs)
            window.extend([_change(str(n), n)])
            await asyncio.sleep(rng.random() * 0.002)

    async def waiter() -> None:
        while True:
            await wait_for(window.waiter(), 0.001)

    writing = asyncio.create_task(writer())
    try:
        for _ in range(200):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(waiter)
                await asyncio.sleep(rng.random() * 0.01)
                group.cancel_scope.cancel()
    finally:
        writing.cancel()
    arrived = window.waiter()
    window.extend([_change("last", 0)])
    assert arrived.is_set()


@contextlib.asynccontextmanager
async def _following(db: CouchDatabase, window: EventWindow) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(window.follow(db, stop, longpoll_s=1.0))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(window: EventWindow, check: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not check():
            await window.waiter().wait()


@pytest.mark.integration
@pytest.mark.both_couch  # CouchDB 3's sequences are opaque strings: the join must work by equality alone
async def test_a_client_slower_than_the_window_catches_up_from_couchdb_and_misses_nothing(fresh_db: MakeDb) -> None:
    db = await fresh_db("events", shards=1)  # as the services create prodflow-events
    window = EventWindow(size=3)
    publisher = EventPublisher(db, "/services/test")
    async with _following(db, window):
        await _until(window, lambda: window.origin is not None)
        stream = sse_stream(window, db, ADMIN, since=None, types=None, heartbeat_s=0.2)
        assert await anext(stream) == b"retry: 2000\n\n"
        for i in range(12):
            await publisher.emit("job.completed", subject=f"e{i}")
        newest = b'"subject":"e11"'
        await _until(window, lambda: window._entries[-1].frame.find(newest) >= 0)
        frames = [await anext(stream) for _ in range(12)]  # the first nine left the window before we read them
        assert [f.split(b'"subject":"')[1].split(b'"')[0].decode() for f in frames] == [f"e{i}" for i in range(12)]
        await publisher.emit("job.completed", subject="live")
        assert b'"subject":"live"' in await anext(stream)
        await stream.aclose()


async def test_clients_are_told_when_the_stream_is_unavailable() -> None:
    async with CouchClient(f"http://127.0.0.1:{free_port()}", timeout=2) as nowhere:
        db = nowhere.db("prodflow-events")
        window = EventWindow(size=10)
        async with _following(db, window):
            stream = sse_stream(window, db, ADMIN, since=None, types=None, heartbeat_s=0.1)
            assert await anext(stream) == b"retry: 2000\n\n"
            assert await asyncio.wait_for(anext(stream), 10) == UNAVAILABLE
            resumed = sse_stream(window, db, ADMIN, since="42", types=None, heartbeat_s=0.1)
            assert await anext(resumed) == b"retry: 2000\n\n"
            assert await asyncio.wait_for(anext(resumed), 10) == UNAVAILABLE
            await stream.aclose()
            await resumed.aclose()


def test_a_document_that_is_not_an_event_is_kept_as_a_change_without_one() -> None:
    window = EventWindow(size=5)
    window.start("0")
    broken = Change(id="evt-broken", seq="1", deleted=False, doc={"_id": "evt-broken", "type": 42})
    window.extend([broken, _change("2", 2)])
    entries = window.after("0") or []
    assert [(e.seq, e.short_type, bool(e.frame)) for e in entries] == [("1", None, False), ("2", "job.completed", True)]
