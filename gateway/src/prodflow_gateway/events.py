"""Relaying ``prodflow-events`` to browsers as Server-Sent Events, resumable with ``Last-Event-ID``.

One :class:`EventBell` per gateway long-polls CouchDB's ``_changes`` and rings when anything new arrived. Each
SSE client reads ``_changes`` from its own sequence (exact and resumable, whatever the server's sequence format)
and waits for the bell when it has caught up, so idle clients hold no CouchDB connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import httpx
from prodflow_core.couch.changes import Change
from prodflow_core.couch.client import CouchDatabase
from prodflow_core.couch.errors import CouchError
from prodflow_core.events import CloudEvent, event_of
from prodflow_core.identity import Identity

_log = logging.getLogger("prodflow.gateway.events")
BATCH = 500


class EventBell:
    """Counts the times new events were seen; clients wait for the count to pass the one they know."""

    def __init__(self, db: CouchDatabase, longpoll_s: float = 20.0) -> None:
        self.db = db
        self.longpoll_s = longpoll_s
        self.generation = 0
        self._changed = asyncio.Condition()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the stream from now until ``stop``."""
        since: str | None = None
        while not stop.is_set():
            try:
                if since is None:
                    since = await self.db.update_seq()
                batch = await self.db.changes(since=since, limit=BATCH, longpoll_s=self.longpoll_s)
            except (httpx.HTTPError, CouchError) as exc:
                _log.warning("event stream unavailable: %s", exc)
                await self.ring()  # let clients retry their own reads
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            if batch.results:
                await self.ring()
            since = batch.last_seq

    async def ring(self) -> None:
        async with self._changed:
            self.generation += 1
            self._changed.notify_all()

    async def wait_past(self, generation: int, timeout_s: float) -> bool:
        """Wait until the bell rang after ``generation``; False on timeout.

        The timeout cancels the wait in this task (not in a task of ``wait_for``'s own, which a cancelled caller,
        e.g. a disconnected SSE client, could leave behind holding the lock: ``ring`` then blocked forever).
        """
        async with self._changed:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._changed.wait_for(lambda: self.generation > generation)
            except TimeoutError:
                return False
        return True


def visible(event: CloudEvent, identity: Identity, types: frozenset[str] | None) -> bool:
    """An event is shown if its experiment is the caller's (or unset) and its type was asked for."""
    if event.experiment is not None and not identity.can_access(event.experiment):
        return False
    return types is None or event.short_type in types


def sse_frame(seq: str, event: CloudEvent) -> bytes:
    """One SSE message: ``id`` is the CouchDB sequence, ``event`` the short type, ``data`` the CloudEvent."""
    data = json.dumps(event.model_dump(exclude_none=True), separators=(",", ":"))
    return f"id: {seq}\nevent: {event.short_type}\ndata: {data}\n\n".encode()


async def sse_stream(
    db: CouchDatabase,
    bell: EventBell,
    identity: Identity,
    *,
    since: str | None,
    types: frozenset[str] | None,
    heartbeat_s: float,
    max_events: int | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body: every visible event after ``since`` (``None`` = from now on), then live ones."""
    cursor = since if since is not None else await db.update_seq()
    yield b"retry: 2000\n\n"
    sent = 0
    while max_events is None or sent < max_events:
        generation = bell.generation
        try:
            batch = await db.changes(since=cursor, limit=BATCH, include_docs=True)
        except (httpx.HTTPError, CouchError):
            await bell.wait_past(generation, heartbeat_s)
            yield b": event stream unavailable, retrying\n\n"
            continue
        for row in batch.results:
            change = Change.from_row(row)
            event = event_of(change)
            if event is not None and visible(event, identity, types):
                yield sse_frame(change.seq, event)
                sent += 1
        cursor = batch.last_seq
        if not batch.results and not await bell.wait_past(generation, heartbeat_s):
            yield b": keep-alive\n\n"
