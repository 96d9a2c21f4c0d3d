"""``/api/requests``: file, list, read, edit, move through the states, preview and download jobs.json."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from prodflow_core.cursors import Cursors, CursorScope, bad_cursor
from prodflow_core.identity import Manager, Reader, Requester
from prodflow_core.problems import FieldError, Problem
from prodflow_core.sql import SessionDep

from prodflow_request_api import listing, requests, states
from prodflow_request_api.deps import OutboxDep, SettingsDep
from prodflow_request_api.jobs_file import summarise
from prodflow_request_api.models import RequestRow
from prodflow_request_api.schemas import (
    ModuleSummary,
    Note,
    Preview,
    Reason,
    RequestForm,
    RequestOut,
    RequestPage,
    RequestPatch,
)

router = APIRouter(prefix="/api/requests", tags=["requests"])

StateFilter = Annotated[
    str | None, Query(description="one of " + ", ".join(states.STATES), json_schema_extra={"enum": list(states.STATES)})
]


async def _one(session: SessionDep, row: RequestRow) -> RequestOut:
    return (await listing.describe(session, [row], detail=True))[0]


@router.post("", status_code=201, summary="File a production request (as a draft)")
async def file_request(
    form: RequestForm, identity: Requester, session: SessionDep, settings: SettingsDep, response: Response
) -> RequestOut:
    identity.require_experiment(form.experiment)
    row = await requests.file(session, form, identity, settings.mailing_lists)
    response.headers["Location"] = f"/api/requests/{requests.public_id(row.id or 0)}"
    return await _one(session, row)


@router.post("/preview", summary="Dry run: the jobs.json and job count a request would make; nothing is stored")
async def preview(form: RequestForm, identity: Requester, session: SessionDep, settings: SettingsDep) -> Preview:
    identity.require_experiment(form.experiment)
    checked = await requests.check(session, form, settings.mailing_lists)
    jobs_file = checked.jobs_file
    modules = [ModuleSummary.model_validate(m) for m in summarise(jobs_file, checked.catalog)]
    return Preview(
        jobs=jobs_file.jobs, modules=modules, jobs_json=jobs_file.document, jobs_json_sha256=jobs_file.sha256
    )


@router.get("", summary="Requests the caller may see, newest first")
async def list_requests(
    identity: Reader,
    session: SessionDep,
    cursors: Cursors,
    experiment: str | None = None,
    state: StateFilter = None,
    label: str | None = None,
    requester: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, description="skip this many (after the cursor, if any)")] = 0,
    cursor: Annotated[str | None, Query(description="the `next` of the page before")] = None,
) -> RequestPage:
    """A page of requests and the cursor of the next (``next``; opaque, for this query and caller, 24 h)."""
    if state is not None and state not in states.STATES:
        raise Problem(
            422,
            "Validation failed",
            f"unknown state {state!r}",
            kind="validation",
            errors=[FieldError(field="query.state", message=f"one of {', '.join(states.STATES)}", type="enum")],
        )
    filters = {"experiment": experiment, "state": state, "label": label, "requester": requester}
    scope = CursorScope.of("request-api.requests", identity, **filters)
    before = None if cursor is None else cursors.open(cursor, scope)
    if before is not None and not isinstance(before, int):
        raise bad_cursor("the cursor is not one of this listing's")
    rows, total, more = await listing.search(session, identity, **filters, limit=limit, offset=offset, before=before)
    items = await listing.describe(session, rows, detail=False)
    following = cursors.seal(scope, rows[-1].id) if more and rows else None
    return RequestPage(items=items, total=total, limit=limit, offset=offset, next=following)


@router.get("/{request_id}", summary="One request with its history and notifications")
async def get_request(request_id: str, identity: Reader, session: SessionDep) -> RequestOut:
    return await _one(session, await requests.get(session, request_id, identity))


@router.patch("/{request_id}", summary="Edit a draft (its requester only)")
async def patch_request(
    request_id: str, changes: RequestPatch, identity: Requester, session: SessionDep, settings: SettingsDep
) -> RequestOut:
    row = await requests.get(session, request_id, identity)
    return await _one(session, await requests.patch(session, row, changes, identity, settings.mailing_lists))


@router.post("/{request_id}/submit", summary="draft → submitted")
async def submit_request(
    request_id: str, identity: Requester, session: SessionDep, outbox: OutboxDep, body: Note | None = None
) -> RequestOut:
    row = await requests.get(session, request_id, identity)
    row = await requests.submit(session, row, identity, (body or Note()).note)
    outbox.wake()
    return await _one(session, row)


@router.post("/{request_id}/approve", summary="submitted → approved: jobs.json generated, mailed, announced")
async def approve_request(
    request_id: str,
    identity: Manager,
    session: SessionDep,
    settings: SettingsDep,
    outbox: OutboxDep,
    body: Note | None = None,
) -> RequestOut:
    row = await requests.get(session, request_id, identity)
    row = await requests.approve(
        session, row, identity, (body or Note()).note, settings.mailing_lists, settings.public_url
    )
    outbox.wake()
    return await _one(session, row)


@router.post("/{request_id}/reject", summary="submitted → rejected (a reason is required)")
async def reject_request(
    request_id: str, body: Reason, identity: Manager, session: SessionDep, outbox: OutboxDep
) -> RequestOut:
    row = await requests.get(session, request_id, identity)
    row = await requests.reject(session, row, identity, body.note)
    outbox.wake()
    return await _one(session, row)


@router.post("/{request_id}/cancel", summary="draft | submitted | approved → cancelled")
async def cancel_request(
    request_id: str, identity: Requester, session: SessionDep, outbox: OutboxDep, body: Note | None = None
) -> RequestOut:
    row = await requests.get(session, request_id, identity)
    row = await requests.cancel(session, row, identity, (body or Note()).note)
    outbox.wake()
    return await _one(session, row)


@router.get(
    "/{request_id}/jobs.json",
    summary="The approved jobs.json, byte for byte as generated",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "jobs.json (prodflow.jobs/1)"}},
)
async def jobs_json(request_id: str, identity: Reader, session: SessionDep) -> Response:
    row = await requests.get(session, request_id, identity)
    if row.jobs_json is None:
        raise Problem(
            404,
            "jobs.json not found",
            f"{request_id} is {row.state}: jobs.json exists once it is approved",
            kind="not-found",
            state=row.state,
        )
    return Response(
        row.jobs_json,
        media_type="application/json",
        headers={
            "ETag": f'"{row.jobs_json_sha256}"',
            "Content-Disposition": f'attachment; filename="{row.label}.jobs.json"',
        },
    )
