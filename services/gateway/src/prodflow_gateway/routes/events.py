"""``/api/events``: the event stream as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Header, Query, Request
from prodflow_core.couch.database import CouchDatabase, looks_like_seq
from prodflow_core.couch.errors import CouchError
from prodflow_core.problems import FieldError, Problem
from starlette.responses import StreamingResponse

from prodflow_gateway.auth import Caller
from prodflow_gateway.events import EventWindow, sse_stream

router = APIRouter(prefix="/api", tags=["events"])


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "CloudEvents as SSE; id = CouchDB seq"}},
)
async def events(
    request: Request,
    identity: Caller,
    last_event_id: Annotated[str | None, Header(max_length=512)] = None,
    since: Annotated[str | None, Query(max_length=512, description="resume after this id (like Last-Event-ID)")] = None,
    types: Annotated[str | None, Query(max_length=2000, description="comma-separated short types")] = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000, description="close after this many events")] = None,
) -> StreamingResponse:
    """Follow the shared event stream: events of the caller's experiments, from ``Last-Event-ID`` (or now) on."""
    wanted = frozenset(t.strip() for t in types.split(",") if t.strip()) if types else None
    resume = last_event_id or since
    window: EventWindow = request.app.state.event_window
    if resume is not None:
        await _check_resume_point(request.app.state.events_db, window, resume)
    body = sse_stream(
        window,
        request.app.state.events_db,
        identity,
        since=resume,
        types=wanted,
        heartbeat_s=request.app.state.settings.sse_heartbeat_s,
        max_events=limit,
    )
    return StreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _check_resume_point(db: CouchDatabase, window: EventWindow, seq: str) -> None:
    """A resume point must be a sequence of the stream (an SSE ``id:``), not, say, a CloudEvent id.

    One the window holds was seen in the feed: CouchDB is not asked.
    """
    problem = Problem(
        400,
        "Bad resume point",
        f"{seq!r} is not an event id of this stream (use the SSE 'id:' field)",
        kind="bad-resume-point",
        errors=[FieldError(field="Last-Event-ID", message="not a sequence of the stream")],
    )
    if not looks_like_seq(seq):
        raise problem
    if window.holds(seq):
        return
    try:
        await db.changes(since=seq, limit=1)
    except CouchError as exc:  # CouchDB 3 refuses a malformed sequence itself
        raise problem from exc
    except httpx.HTTPError as exc:
        raise Problem(503, "Event stream unavailable", "CouchDB did not answer", kind="unavailable") from exc
