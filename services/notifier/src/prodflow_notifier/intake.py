"""From the event stream to the outbox: one follower, whose checkpoint commits with the rows it adds.

The handler only collects (event, subscription) pairs; :meth:`Intake.save`, which the follower calls with the
batch's sequence, writes them and the checkpoint in one transaction. A process killed before that commit sees the
batch again and adds it once; killed after it, the batch is never read again. Nothing is lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from prodflow_core.couch.changes import ChangesFollower
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.events import CloudEvent, event_follower
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_notifier.matching import Filter, make_filter
from prodflow_notifier.models import CheckpointRow, OutboxRow, SubscriptionRow, WebhookEventRow

CONSUMER = "notifier"


def event_body(event: CloudEvent) -> str:
    """The delivered body: the CloudEvent in structured JSON mode, compact (the bytes that are signed)."""
    return json.dumps(event.model_dump(exclude_none=True), separators=(",", ":"), ensure_ascii=False)


async def active_filters(session: AsyncSession) -> dict[str, Filter]:
    """Each active subscription's filter, by id (failing ones too: their outbox keeps growing)."""
    rows = (await session.exec(select(SubscriptionRow).where(col(SubscriptionRow.active)))).all()
    return {row.id: make_filter(row.event_types, row.experiments, row.labels) for row in rows}


async def add_to_outbox(session: AsyncSession, pairs: list[tuple[CloudEvent, str]]) -> int:
    """Add an outbox row per (event, subscription) in the order given, bodies once per event; no commit."""
    known = {
        row
        for row in (
            await session.exec(select(WebhookEventRow.id).where(col(WebhookEventRow.id).in_({e.id for e, _ in pairs})))
        ).all()
    }
    for event, _ in pairs:
        if event.id not in known:
            session.add(WebhookEventRow(id=event.id, body=event_body(event)))
            known.add(event.id)
    await session.flush()
    for event, subscription_id in pairs:
        # the unit of work inserts in the order of add(): ids, the delivery order, follow the event order
        session.add(OutboxRow(subscription_id=subscription_id, event_id=event.id))
    await session.flush()
    return len(pairs)


class Intake:
    """The follower's handler and :class:`~prodflow_core.couch.changes.CheckpointStore` at once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], on_added: Callable[[], None]) -> None:
        self.sessions = sessions
        self.on_added = on_added
        self._pending: dict[tuple[str, str], CloudEvent] = {}
        self._filters: dict[str, Filter] | None = None
        self.positioned = asyncio.Event()
        """Set once the follower has a stored position: every event stored from then on will be handled."""

    async def handle(self, event: CloudEvent, _seq: str) -> None:
        """Collect the subscriptions ``event`` is for (filters re-read once per batch)."""
        if self._filters is None:
            async with self.sessions() as session:
                self._filters = await active_filters(session)
        for subscription_id, wanted in self._filters.items():
            if wanted.matches(event):
                self._pending[(event.id, subscription_id)] = event

    async def load(self) -> str | None:
        """The stored sequence."""
        async with self.sessions() as session:
            row = await session.get(CheckpointRow, CONSUMER)
        if row is None:
            return None
        self.positioned.set()
        return row.seq

    async def save(self, seq: str) -> None:
        """Write the collected rows and ``seq`` in one transaction."""
        pairs = [(event, subscription_id) for (_, subscription_id), event in self._pending.items()]
        async with self.sessions() as session:
            if pairs:
                await add_to_outbox(session, await _not_yet_queued(session, pairs))
            row = await session.get(CheckpointRow, CONSUMER)
            if row is None:
                session.add(CheckpointRow(consumer=CONSUMER, seq=seq))
            else:
                row.seq = seq
                session.add(row)
            await session.commit()
        self._pending.clear()
        self._filters = None
        self.positioned.set()
        if pairs:
            self.on_added()

    def follower(self, db: CouchDatabase, *, longpoll_s: float, settle_s: float = 0.0) -> ChangesFollower:
        """The one follower of the event stream, starting "now" the first time."""
        return event_follower(
            db, CONSUMER, self.handle, start="now", longpoll_s=longpoll_s, checkpoints=self, settle_s=settle_s
        )


async def _not_yet_queued(session: AsyncSession, pairs: list[tuple[CloudEvent, str]]) -> list[tuple[CloudEvent, str]]:
    """``pairs`` without those already in the outbox (a replay may have queued them first)."""
    queued = set(
        (
            await session.exec(
                select(OutboxRow.event_id, OutboxRow.subscription_id).where(
                    col(OutboxRow.event_id).in_({e.id for e, _ in pairs})
                )
            )
        ).all()
    )
    return [(e, s) for e, s in pairs if (e.id, s) not in queued]
