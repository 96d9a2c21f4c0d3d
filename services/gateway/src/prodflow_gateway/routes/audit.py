"""``/api/audit``: the state-changing calls made through the gateway, newest first (admin). Read only."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from prodflow_core.cursors import MAX_CURSOR_CHARS, Cursors, CursorScope, bad_cursor
from prodflow_core.sql import SessionDep
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from prodflow_gateway.audit_log import audit_page
from prodflow_gateway.auth import AdminCaller
from prodflow_gateway.schemas import AuditEntryOut, AuditPage

router = APIRouter(prefix="/api/audit", tags=["audit"])
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE.match(value):  # pydantic would read "0.5" as seconds since 1970
        raise PydanticCustomError("datetime_from_date_parsing", "Input should be an ISO 8601 date-time")
    return value


Moment = Annotated[datetime, BeforeValidator(_iso_text)]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _before(cursors: Cursors, cursor: str | None, scope: CursorScope) -> int | None:
    if cursor is None:
        return None
    before = cursors.open(cursor, scope)
    if not isinstance(before, int):
        raise bad_cursor("the cursor is not one this listing gave")
    return before


@router.get("", response_model=AuditPage)
async def list_entries(
    admin: AdminCaller,
    session: SessionDep,
    cursors: Cursors,
    user: Annotated[str | None, Query(max_length=128)] = None,
    since: Annotated[Moment | None, Query(description="entries at or after (ISO 8601; UTC without offset)")] = None,
    until: Annotated[Moment | None, Query(description="entries before (ISO 8601; UTC without offset)")] = None,
    path: Annotated[str | None, Query(max_length=2000, description="paths starting with this")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="'next' of the previous page (opaque)")
    ] = None,
) -> AuditPage:
    """State-changing calls (POST, PUT, PATCH, DELETE) through the gateway, newest first, filtered."""
    since, until = _utc(since), _utc(until)
    filters = {"user": user, "since": since and since.isoformat(), "until": until and until.isoformat(), "path": path}
    scope = CursorScope.of("gateway.audit", admin, **filters)
    before = _before(cursors, cursor, scope)
    entries = await audit_page(session, user=user, since=since, until=until, path=path, before=before, limit=limit)
    items = [AuditEntryOut.model_validate(e, from_attributes=True) for e in entries]
    following = cursors.seal(scope, items[-1].id) if len(items) == limit else None
    return AuditPage(items=items, count=len(items), next=following)
