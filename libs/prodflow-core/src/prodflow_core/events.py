"""The shared event stream: CloudEvents 1.0 documents in the ``prodflow-events`` database."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from prodflow_core.couch.changes import Change, ChangesFollower, CheckpointStore
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.couch.errors import CouchError, DocumentConflict
from prodflow_core.waiting import first_of

_log = logging.getLogger("prodflow.events")
TYPE_PREFIX = "org.prodflow."
EVENT_ID_PREFIX = "evt-"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_last_id_value = 0
_id_lock = threading.Lock()


def new_event_id(now_ms: int | None = None) -> str:
    """A ULID-style id: 48-bit millisecond time then 80 random bits, Crockford base32, sortable by time.

    Ids this process makes from the clock are strictly increasing, within one millisecond too (the random part
    then counts up from the previous id): CouchDB 3 stores the documents of one ``_bulk_docs`` in the order of
    their ids, so events published together keep the order they were made in.
    """
    global _last_id_value
    value = (int(time.time() * 1000) if now_ms is None else now_ms) << 80 | int.from_bytes(os.urandom(10), "big")
    if now_ms is None:
        with _id_lock:
            value = max(value, _last_id_value + 1)
            _last_id_value = value
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return EVENT_ID_PREFIX + "".join(reversed(chars))


def utc_now() -> str:
    """The current time as RFC 3339 UTC with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in JSON form, as stored in ``prodflow-events`` (``_id`` = ``id``)."""

    model_config = ConfigDict(extra="ignore")

    specversion: str = "1.0"
    id: str = Field(default_factory=new_event_id)
    source: str
    type: str
    subject: str | None = None
    time: str = Field(default_factory=utc_now)
    datacontenttype: str = "application/json"
    experiment: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def short_type(self) -> str:
        """The type without the ``org.prodflow.`` prefix (``job.completed``)."""
        return self.type.removeprefix(TYPE_PREFIX)

    def document(self) -> dict[str, Any]:
        """The CouchDB document of this event."""
        return {"_id": self.id, **self.model_dump(exclude_none=True)}


def make_event(
    short_type: str,
    source: str,
    *,
    subject: str | None = None,
    experiment: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> CloudEvent:
    """An event of type ``org.prodflow.<short_type>`` from ``source`` (``/services/<name>``)."""
    fields: dict[str, Any] = {
        "source": source,
        "type": TYPE_PREFIX + short_type,
        "subject": subject,
        "experiment": experiment,
        "data": data or {},
    }
    if event_id:
        fields["id"] = event_id
    return CloudEvent(**fields)


class EventPublisher:
    """Publishes events as documents; publishing the same id twice is harmless."""

    def __init__(self, db: CouchDatabase, source: str) -> None:
        self.db = db
        self.source = source

    async def publish(self, event: CloudEvent) -> None:
        """Store one event."""
        with contextlib.suppress(DocumentConflict):  # already published: the id is the idempotency key
            await self.db.put(event.document())

    async def publish_many(self, events: Iterable[CloudEvent]) -> None:
        """Store several events in one ``_bulk_docs``; already-published ids are skipped."""
        docs = [e.document() for e in events]
        if docs:
            await self.db.bulk_docs(docs)

    async def emit(
        self,
        short_type: str,
        *,
        subject: str | None = None,
        experiment: str | None = None,
        data: dict[str, Any] | None = None,
        event_id: str | None = None,
    ) -> CloudEvent:
        """Build an event from this publisher's source and store it."""
        event = make_event(
            short_type, self.source, subject=subject, experiment=experiment, data=data, event_id=event_id
        )
        await self.publish(event)
        return event


class BackloggedPublisher:
    """An :class:`EventPublisher` that keeps what the CouchDB server did not take and stores it later, in order.

    ``emit`` stores at once while the server answers; while it is away, events wait in a bounded in-memory backlog
    (oldest dropped past ``limit``, logged) that :meth:`run` retries every ``retry_s`` under the same ids, so an
    event is never stored twice. For services whose events are announcements of their own state (cycle runs),
    not work items: those that must survive a crash of the service itself go through an SQL outbox instead.
    """

    def __init__(self, publisher: EventPublisher, *, retry_s: float = 1.0, limit: int = 10_000) -> None:
        self.publisher = publisher
        self.retry_s = retry_s
        self.limit = limit
        self.backlog: collections.deque[CloudEvent] = collections.deque()
        self._wake = asyncio.Event()

    async def emit(
        self,
        short_type: str,
        *,
        subject: str | None = None,
        experiment: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> CloudEvent:
        """Store an event now, or queue it behind those still waiting (order is kept)."""
        event = make_event(short_type, self.publisher.source, subject=subject, experiment=experiment, data=data)
        if not self.backlog:
            try:
                await self.publisher.publish(event)
                return event
            except (httpx.HTTPError, CouchError) as exc:
                _log.warning("event %s not stored (%s); kept for a retry", event.type, exc)
        if len(self.backlog) >= self.limit:
            dropped = self.backlog.popleft()
            _log.error("event backlog full: dropped %s %s", dropped.type, dropped.id)
        self.backlog.append(event)
        self._wake.set()
        return event

    async def flush(self) -> bool:
        """Try to store the backlog once; True when it is empty."""
        batch = list(self.backlog)
        if not batch:
            return True
        try:
            await self.publisher.publish_many(batch)
        except (httpx.HTTPError, CouchError):
            return False
        for _ in batch:
            self.backlog.popleft()
        return not self.backlog

    async def run(self, stop: asyncio.Event) -> None:
        """Retry the backlog until ``stop``; a last try at the end."""
        while not stop.is_set():
            if not self.backlog:
                self._wake.clear()
                await first_of(stop, self._wake)
                continue
            if not await self.flush():
                await first_of(stop, timeout_s=self.retry_s)
        await self.flush()


def event_of(change: Change) -> CloudEvent | None:
    """The event carried by a change of ``prodflow-events``, or ``None`` (deleted, design or foreign doc)."""
    if change.deleted or change.doc is None or not change.id.startswith(EVENT_ID_PREFIX):
        return None
    return CloudEvent.model_validate(change.doc)


EventHandler = Callable[[CloudEvent, str], Awaitable[None]]


def event_follower(
    db: CouchDatabase,
    consumer: str,
    handle: EventHandler,
    *,
    types: Iterable[str] | None = None,
    start: str = "0",
    longpoll_s: float = 20.0,
    checkpoints: CheckpointStore | None = None,
    settle_s: float = 0.0,
) -> ChangesFollower:
    """A follower of the event stream that calls ``handle(event, seq)`` for each event of ``types``.

    ``types`` are short types (``request.approved``); ``None`` means all. CouchDB filters them on the server
    (``filter=_selector``), so such a follower wakes only for its events; PouchDB Server has no such filter,
    so there they are picked here, from the type in the document, before an event is decoded.
    """
    wanted = frozenset(TYPE_PREFIX + t for t in types or ())

    def of_wanted_type(change: Change) -> bool:
        return change.doc is not None and change.doc.get("type") in wanted

    async def on_batch(changes: list[Change]) -> None:
        for change in changes:
            event = event_of(change)
            if event is not None:
                await handle(event, change.seq)

    return ChangesFollower(
        db,
        consumer,
        on_batch,
        include_docs=True,
        start=start,
        longpoll_s=longpoll_s,
        checkpoints=checkpoints,
        keep=of_wanted_type if types is not None else None,
        selector={"type": {"$in": sorted(wanted)}} if types is not None else None,
        settle_s=settle_s,
        stream=True,
    )
