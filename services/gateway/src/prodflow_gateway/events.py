"""Relaying ``prodflow-events`` to browsers as Server-Sent Events, resumable with ``Last-Event-ID``.

One :class:`EventWindow` per gateway holds the most recent changes of the stream in memory; its follower
(:meth:`EventWindow.follow`) is the gateway's only reader of ``_changes``. An SSE client is served from the
window; only a client whose resume point is not in the window (older, or the client fell behind the window's tail)
reads ``_changes`` itself, from its own sequence, until it reaches a change the window holds, and goes on from
the window right after it. Sequences are opaque (CouchDB 3): positions are found by exact equality with sequences
seen in the feed, never by comparing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass

import httpx
from prodflow_core.couch.changes import Change
from prodflow_core.couch.changes_stream import FeedEnded, feed_rows, gather, take_batch
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.errors import CouchError
from prodflow_core.events import CloudEvent, event_of
from prodflow_core.identity import Identity
from prodflow_core.waiting import unless_stopped
from pydantic import ValidationError

_log = logging.getLogger("prodflow.gateway.events")
BATCH = 500
"""Window entries handed to a client per wake-up."""
READ_BATCH = 100
"""Changes per read of the stream with their documents (the follower's batches, a client's catch-up): an event of a
big label's jobs lists up to 1,000 of them (50 to 270 KB), so a read of 500 could hold over 100 MB."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One change of the stream: its sequence, and for an event its SSE frame with what a client filters on.

    The event itself is not kept: its frame is all a client gets, and a ``job.*`` event of a big label lists
    up to 1,000 jobs (the parsed events took twice their frames' memory).
    """

    seq: str
    short_type: str | None
    """The event's short type (``job.completed``); ``None`` for a document that is not an event."""
    experiment: str | None
    frame: bytes

    @classmethod
    def of(cls, change: Change) -> Entry:
        """The entry of one change; a document that is not a valid event is kept as a change without one."""
        try:
            event = event_of(change)
        except ValidationError:
            _log.warning("change %s of the event stream is not a CloudEvent; not relayed", change.id)
            event = None
        if event is None:
            return cls(change.seq, None, None, b"")
        return cls(change.seq, event.short_type, event.experiment, sse_frame(change.seq, event))


class EventWindow:
    """The last changes of the event stream, contiguous, in feed order, and a wake-up for waiters.

    It holds at most ``size`` changes and, beyond the newest one, ``max_bytes`` of their frames: the events of a
    big label's jobs list up to 1,000 of them each. Position ``n`` is the ``n``-th change the follower saw. ``base``
    is the sequence just before the oldest entry (where the follower started, or the last evicted change): the
    window holds exactly the changes after it.
    """

    def __init__(self, size: int, max_bytes: int = 64 << 20) -> None:
        if size < 1:
            raise ValueError("the window holds at least one change")
        self.size = size
        self.max_bytes = max_bytes
        self.frame_bytes = 0
        """The size of the frames held."""
        self.available = True
        self._entries: deque[Entry] = deque()
        self._first = 0  # position of _entries[0]
        self._base: str | None = None
        self.origin: str | None = None
        """Where the follower started (``None`` before): the window's first change follows it."""
        self._positions: dict[str, int] = {}  # base and every entry's sequence -> position
        self._arrived = asyncio.Event()

    @property
    def last_seq(self) -> str | None:
        """The newest sequence the window knows (``None`` before the follower started)."""
        return self._entries[-1].seq if self._entries else self._base

    def __len__(self) -> int:
        return len(self._entries)

    def holds(self, seq: str) -> bool:
        """True if the changes right after ``seq`` can be served from memory."""
        return seq in self._positions

    def start(self, seq: str) -> None:
        """Begin the window after ``seq`` (once; later calls are ignored)."""
        if self._base is None:
            self._base = self.origin = seq
            self._positions[seq] = self._first - 1
            self._ring()

    def extend(self, changes: Iterable[Change]) -> None:
        """Append changes that followed the newest one, evict the oldest beyond the bounds, and wake waiters."""
        if self._base is None:
            raise RuntimeError("start the window before extending it")
        added = False
        for change in changes:
            if change.seq in self._positions:
                continue  # seen already: a feed never repeats a sequence, but a replayed batch must not break us
            self._positions[change.seq] = self._first + len(self._entries)
            entry = Entry.of(change)
            self._entries.append(entry)
            self.frame_bytes += len(entry.frame)
            added = True
        while len(self._entries) > self.size or (self.frame_bytes > self.max_bytes and len(self._entries) > 1):
            del self._positions[self._base]
            evicted = self._entries.popleft()
            self._base = evicted.seq
            self.frame_bytes -= len(evicted.frame)
            self._first += 1
        if added:
            self._ring()

    def after(self, seq: str, limit: int = BATCH) -> list[Entry] | None:
        """Up to ``limit`` entries that follow ``seq``; ``None`` if ``seq`` is not in the window."""
        position = self._positions.get(seq)
        if position is None:
            return None
        start = position + 1 - self._first
        # Indexing a deque walks from its nearer end: cheap for the usual client, a few entries from the head.
        return [self._entries[i] for i in range(start, min(start + limit, len(self._entries)))]

    def set_available(self, available: bool) -> None:
        """Record whether the follower can read the stream; waiters are woken when that changes."""
        if available != self.available:
            self.available = available
            self._ring()

    def waiter(self) -> asyncio.Event:
        """An event set at the next change of the window: take it before looking, then wait on it."""
        return self._arrived

    def _ring(self) -> None:
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    async def follow(
        self, db: CouchDatabase, stop: asyncio.Event, longpoll_s: float = 20.0, settle_s: float = 0.0
    ) -> None:
        """Fill the window from ``db``'s ``_changes``, from now until ``stop``, on a continuous feed (one request that
        the server writes each change to, :mod:`prodflow_core.couch.changes_stream`); a feed that broke, or ended
        without bringing anything, is opened again after a second. A batch gathers up to ``settle_s`` after its
        first change (``changes_stream.gather``); ``longpoll_s`` bounds the server's silence (its heartbeats)."""
        while not stop.is_set():
            brought = False
            try:
                if self.last_seq is None:
                    self.start(await db.update_seq())
                brought = await self._follow_feed(db, stop, min(10.0, max(0.5, longpoll_s)), settle_s)
            except (httpx.HTTPError, CouchError) as exc:
                _log.warning("event stream unavailable: %s", exc)
                self.set_available(False)
            if not brought:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _follow_feed(self, db: CouchDatabase, stop: asyncio.Event, heartbeat_s: float, settle_s: float) -> bool:
        """Extend the window from one continuous feed until ``stop`` or its end; whether it brought a change."""
        opened = asyncio.Event()
        since = self.last_seq
        assert since is not None
        brought = False
        async with feed_rows(db, since=since, include_docs=True, selector=None, heartbeat_s=heartbeat_s,
                             max_rows=2 * READ_BATCH, opened=opened) as rows:  # fmt: skip
            while True:
                first = await unless_stopped(rows.get(), stop, *(() if self.available else (opened,)))
                if opened.is_set():
                    self.set_available(True)
                if first is None:
                    if stop.is_set():
                        return brought
                    continue  # opened: the stream is available again
                if settle_s and isinstance(first, dict):
                    await gather(rows, settle_s, stop)
                batch, end = take_batch(rows, first, READ_BATCH)
                brought = brought or bool(batch)
                self.extend(Change.from_row(row) for row in batch)
                if isinstance(end, FeedEnded):
                    return brought
                if end is not None:
                    raise end


async def wait_for(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until ``event`` is set; False on timeout. No lock and no task: a cancelled waiter leaves nothing."""
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True


def visible(entry: Entry, identity: Identity, types: frozenset[str] | None) -> bool:
    """An event is shown if its experiment is the caller's (or unset) and its type was asked for."""
    if entry.short_type is None:
        return False  # not an event
    if entry.experiment is not None and not identity.can_access(entry.experiment):
        return False
    return types is None or entry.short_type in types


def sse_frame(seq: str, event: CloudEvent) -> bytes:
    """One SSE message: ``id`` is the CouchDB sequence, ``event`` the short type, ``data`` the CloudEvent."""
    data = json.dumps(event.model_dump(exclude_none=True), separators=(",", ":"))
    return f"id: {seq}\nevent: {event.short_type}\ndata: {data}\n\n".encode()


KEEP_ALIVE = b": keep-alive\n\n"
UNAVAILABLE = b": event stream unavailable, retrying\n\n"


async def _catch_up(db: CouchDatabase, window: EventWindow, since: str) -> list[Entry] | None:
    """Changes after ``since`` read from CouchDB, up to and including the first one the window holds.

    ``None`` when CouchDB did not answer.
    """
    try:
        batch = await db.changes(since=since, limit=READ_BATCH, include_docs=True)
    except (httpx.HTTPError, CouchError):
        return None
    entries: list[Entry] = []
    for row in batch.results:
        entries.append(Entry.of(Change.from_row(row)))
        if window.holds(entries[-1].seq):
            break
    return entries


async def sse_stream(
    window: EventWindow,
    db: CouchDatabase,
    identity: Identity,
    *,
    since: str | None,
    types: frozenset[str] | None,
    heartbeat_s: float,
    max_events: int | None = None,
) -> AsyncGenerator[bytes, None]:
    """The SSE body: every visible event after ``since`` (``None`` = from now on), then live ones.

    ``cursor`` is the sequence of the last change handed on (shown or not). While the window holds it, the next
    changes come from memory; otherwise from ``_changes`` up to a change the window holds, so the join neither
    skips nor repeats a change. A client too slow for the window goes the same way.
    """
    cursor = since if since not in (None, "now") else window.last_seq  # before the first byte: "now" is exact
    yield b"retry: 2000\n\n"
    sent = 0
    while True:
        arrived = window.waiter()  # taken before looking: a change that comes meanwhile still wakes us
        if cursor is None:  # from now on, and the follower has not started yet: from where it starts
            cursor = window.origin
            if cursor is None:
                if not await wait_for(arrived, heartbeat_s):
                    yield KEEP_ALIVE if window.available else UNAVAILABLE
                continue
        entries = window.after(cursor)
        if entries is None:
            entries = await _catch_up(db, window, cursor)
            if entries is None:
                yield UNAVAILABLE
                await wait_for(arrived, heartbeat_s)
                continue
        if not entries:
            woke = await wait_for(arrived, heartbeat_s)
            if not window.available:
                yield UNAVAILABLE
            elif not woke:
                yield KEEP_ALIVE
            continue
        for entry in entries:
            if visible(entry, identity, types):
                yield entry.frame
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
        cursor = entries[-1].seq
