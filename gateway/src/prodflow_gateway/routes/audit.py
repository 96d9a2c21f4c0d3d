"""``/api/audit``: the state-changing calls made through the gateway, newest first (admin). Read only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from prodflow_core.problems import Problem
from prodflow_core.sql import SessionDep

from prodflow_gateway.audit_log import audit_page
from prodflow_gateway.auth import AdminCaller
from prodflow_gateway.schemas import AuditEntryOut, AuditPage

router = APIRouter(prefix="/api/audit", tags=["audit"])


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise Problem(400, "Bad request", "cursor is the 'next' of a previous page", kind="bad-request")
    return int(cursor)


@router.get("", response_model=AuditPage)
async def list_entries(
    _admin: AdminCaller,
    session: SessionDep,
    user: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[datetime | None, Query(description="entries at or after (ISO 8601; UTC without offset)")] = None,
    until: Annotated[datetime | None, Query(description="entries before (ISO 8601; UTC without offset)")] = None,
    path: Annotated[str | None, Query(max_length=2000, description="paths starting with this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=32, description="'next' of the previous page")] = None,
) -> AuditPage:
    """State-changing calls (POST, PUT, PATCH, DELETE) through the gateway, newest first, filtered."""
    entries = await audit_page(
        session, user=user, since=_utc(since), until=_utc(until), path=path, before=_before(cursor), limit=limit
    )
    items = [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries]
    following = str(items[-1].id) if len(items) == limit else None
    return AuditPage(items=items, count=len(items), next=following)
