"""Moving requests on from the submitter's and monitor's events (``campaign.created``, ``label.completed``),
mailing their outcome (``jobs.cancelled`` of a whole campaign too), and tallying failures for the digests.

Handlers are idempotent: an event seen twice, or about a request already past that point, changes nothing; the
outcome mail is queued in the transaction that moves the request, once per request and outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prodflow_core.events import CloudEvent
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import digests, outcomes, states
from prodflow_request_api.models import RequestRow
from prodflow_request_api.outbox import add_event, already_queued
from prodflow_request_api.requests import move, public_id, row_number

_log = logging.getLogger("prodflow.request_api.following")

CONSUMER = "request-api"
FOLLOWED = ("campaign.created", "label.completed", "jobs.cancelled", *digests.FOLLOWED)


async def _find(session: AsyncSession, event: CloudEvent) -> RequestRow | None:
    """The request an event is about: by ``request_id``, else by experiment and label (newest first)."""
    number = row_number(str(event.data.get("request_id") or ""))
    if number is not None:
        return await session.get(RequestRow, number)
    label = event.data.get("label")
    if not label:
        return None
    query = select(RequestRow).where(RequestRow.label == label)
    if event.experiment:
        query = query.where(RequestRow.experiment == event.experiment)
    query = query.where(col(RequestRow.state).in_([states.APPROVED, states.IN_PRODUCTION]))
    return (await session.exec(query.order_by(col(RequestRow.id).desc()).limit(1))).first()


async def _to_production(session: AsyncSession, row: RequestRow, event: CloudEvent, note: str) -> None:
    await move(session, row, states.IN_PRODUCTION, event.source, note)


async def on_campaign_created(session: AsyncSession, event: CloudEvent) -> bool:
    """``approved → submitted-to-production``; returns True if the request moved."""
    row = await _find(session, event)
    if row is None or row.state != states.APPROVED:
        return False
    campaign = event.data.get("campaign_id")
    row.campaign_id = str(campaign) if campaign else row.campaign_id
    await _to_production(session, row, event, f"campaign {campaign} with {event.data.get('jobs', '?')} jobs")
    await session.commit()
    return True


async def on_label_completed(session: AsyncSession, event: CloudEvent, public_url: str) -> bool:
    """``submitted-to-production → completed`` (no failed job) or ``failed``; returns True if it moved."""
    row = await _find(session, event)
    if row is None or row.state not in (states.APPROVED, states.IN_PRODUCTION):
        return False
    counts = {str(k): int(v) for k, v in (event.data.get("counts") or {}).items()}
    if row.state == states.APPROVED:  # the campaign event is late or lost: the jobs ran all the same
        await _to_production(session, row, event, "jobs seen by the monitor")
    failed = counts.get("failed", 0)
    final = states.FAILED if failed else states.COMPLETED
    summary = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    await move(session, row, final, event.source, f"label finished: {summary}")
    add_event(
        session,
        f"request.{final}",
        subject=public_id(row.id or 0),
        experiment=row.experiment,
        data={"request_id": public_id(row.id or 0), "label": row.label, "counts": counts},
    )
    if not await already_queued(session, f"{outcomes.KIND}:{public_id(row.id or 0)}:{states.CANCELLED}"):
        await outcomes.queue(session, row, public_id(row.id or 0), final, counts, event.data, public_url)
    await session.commit()
    return True


async def on_jobs_cancelled(session: AsyncSession, event: CloudEvent, public_url: str) -> bool:
    """A whole campaign (or label) of a request in production cancelled: its contacts are told, once."""
    if event.data.get("whole") is not True:
        return False  # some jobs picked by hand: the request goes on
    row = await _find(session, event)
    if row is None or row.state != states.IN_PRODUCTION:
        return False
    cancelled = len(event.data.get("job_ids") or [])
    by, reason = event.data.get("by") or "?", event.data.get("reason") or ""
    note = f"cancelled by {by}" + (f": {reason}" if reason else "")
    request_id = public_id(row.id or 0)
    queued = await outcomes.queue(
        session, row, request_id, states.CANCELLED, {"cancelled": cancelled}, {}, public_url, note=note
    )
    await session.commit()
    return queued


async def on_failures(session: AsyncSession, event: CloudEvent) -> bool:
    """Tally the failures an event reports, for the digest; returns True if any were new."""
    counted = await digests.record(session, event)
    await session.commit()
    return counted > 0


class RequestFollower:
    """The handler ``event_follower`` calls for each followed event."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], wake: Callable[[], None], public_url: str) -> None:
        self.sessions = sessions
        self.wake = wake
        self.public_url = public_url

    async def __call__(self, event: CloudEvent, seq: str) -> None:
        async with self.sessions() as session:
            if event.short_type == "campaign.created":
                moved = await on_campaign_created(session, event)
            elif event.short_type == "label.completed":
                moved = await on_label_completed(session, event, self.public_url)
            elif event.short_type == "jobs.cancelled":
                moved = await on_jobs_cancelled(session, event, self.public_url)
            elif event.short_type in digests.FOLLOWED:
                await on_failures(session, event)
                return
            else:
                return
        if moved:
            self.wake()
            _log.info("event %s (%s) moved or mailed a request", event.id, event.short_type)
