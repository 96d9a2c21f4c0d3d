"""Replay: queue again, in the stream's order, every event a subscription matches from a given event on.

The start is found by its id in ``_changes`` read from the beginning: positions are never compared (CouchDB 3's
sequences are opaque), only the event ids of the changes are matched.
"""

from __future__ import annotations

from prodflow_core.couch.changes import Change
from prodflow_core.couch.database import CouchDatabase
from prodflow_core.events import CloudEvent, event_of
from prodflow_core.problems import not_found
from sqlmodel import col, delete
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_notifier.intake import add_to_outbox
from prodflow_notifier.matching import make_filter
from prodflow_notifier.models import OutboxRow, SubscriptionRow
from prodflow_notifier.subscriptions import resume

_BATCH = 1000
_CHUNK = 500


async def events_from(db: CouchDatabase, subscription: SubscriptionRow, first_id: str) -> list[CloudEvent]:
    """The subscription's events from ``first_id`` on, in stream order (404 problem if the stream lacks it)."""
    wanted = make_filter(subscription.event_types, subscription.experiments, subscription.labels)
    since, found, events = "0", False, []
    while True:
        batch = await db.changes(since=since, limit=_BATCH, include_docs=True)
        for row in batch.results:
            event = event_of(Change.from_row(row))
            if event is None:
                continue
            found = found or event.id == first_id
            if found and wanted.matches(event):
                events.append(event)
        since = batch.last_seq
        if len(batch.results) < _BATCH:
            break
    if not found:
        raise not_found("Event", first_id)
    return events


async def requeue(session: AsyncSession, subscription: SubscriptionRow, events: list[CloudEvent]) -> int:
    """Put ``events`` at the end of the subscription's line (again, if they were there) and resume it."""
    ids = [event.id for event in events]
    for start in range(0, len(ids), _CHUNK):
        await session.exec(
            delete(OutboxRow).where(
                col(OutboxRow.subscription_id) == subscription.id,
                col(OutboxRow.event_id).in_(ids[start : start + _CHUNK]),
            )
        )
    queued = await add_to_outbox(session, [(event, subscription.id) for event in events])
    await resume(session, subscription)
    session.add(subscription)
    await session.commit()
    return queued
