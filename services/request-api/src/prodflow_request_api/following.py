"""Moving requests on from the submitter's and monitor's events (``campaign.created``, ``label.completed``).

Handlers are idempotent: an event seen twice, or about a request already past that point, changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prodflow_core.events import CloudEvent
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import states
from prodflow_request_api.models import RequestRow
from prodflow_request_api.outbox import add_event
from prodflow_request_api.requests import move, public_id, row_number

_log = logging.getLogger("prodflow.request_api.following")

CONSUMER = "request-api"
FOLLOWED = ("campaign.created", "label.completed")


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


async def on_label_completed(session: AsyncSession, event: CloudEvent) -> bool:
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
    await session.commit()
    return True


class RequestFollower:
    """The handler ``event_follower`` calls for each followed event."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], wake: Callable[[], None]) -> None:
        self.sessions = sessions
        self.wake = wake

    async def __call__(self, event: CloudEvent, seq: str) -> None:
        async with self.sessions() as session:
            if event.short_type == "campaign.created":
                moved = await on_campaign_created(session, event)
            elif event.short_type == "label.completed":
                moved = await on_label_completed(session, event)
            else:
                return
        if moved:
            self.wake()
            _log.info("event %s (%s) moved a request", event.id, event.short_type)
