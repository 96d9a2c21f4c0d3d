"""Production requests over SQL: filing, editing, the state machine with its history, approval.

Each change commits together with its history row and the events and mails it causes (the outbox), so what
the API answered is what the stream and the contacts will learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.events import utc_now
from prodflow_core.identity import Identity
from prodflow_core.problems import FieldError, Problem, not_found, validation_problem
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import catalog_store, preferences, states
from prodflow_request_api.catalog import CatalogView
from prodflow_request_api.jobs_file import JobsFile, build_jobs_file, check_request, run_span
from prodflow_request_api.mail import approval_mail, recipients
from prodflow_request_api.models import HistoryRow, RequestRow
from prodflow_request_api.outbox import add_event, add_mail
from prodflow_request_api.schemas import RequestForm, RequestPatch

ID_PREFIX = "req-"
DATABASE_OF_KIND = {"production": "data-production", "processing": "data-processing"}


async def commit(session: AsyncSession, row: RequestRow, *, flush_only: bool = False) -> None:
    """Commit (or flush) a change of ``row``; a concurrent change of the request is a 409 problem, not an overwrite."""
    request_id = public_id(row.id or 0)  # read now: after a rollback the row is expired
    try:
        await (session.flush() if flush_only else session.commit())
    except StaleDataError as exc:
        await session.rollback()
        raise Problem(
            409, "Conflict", f"{request_id} was changed meanwhile: read it again and retry", kind="conflict"
        ) from exc


def public_id(number: int) -> str:
    """The id users see: ``req-000042``."""
    return f"{ID_PREFIX}{number:06d}"


def row_number(request_id: str) -> int | None:
    """The row number of a public id, or ``None`` if it is not one."""
    digits = request_id.removeprefix(ID_PREFIX)
    return int(digits) if request_id.startswith(ID_PREFIX) and digits.isdigit() else None


def jobs_json_path(request_id: str) -> str:
    """Where an approved request's jobs.json is served."""
    return f"/api/requests/{request_id}/jobs.json"


@dataclass(frozen=True)
class Checked:
    """A request that passed every check, with the catalog it was checked against and its jobs.json."""

    form: RequestForm
    catalog: CatalogView
    jobs_file: JobsFile


def _invalid(errors: Sequence[FieldError]) -> Problem:
    return Problem(
        422,
        "Invalid production request",
        "; ".join(f"{e.field}: {e.message}" for e in errors),
        kind="validation",
        errors=errors,
    )


async def check(
    session: AsyncSession,
    form: RequestForm,
    mailing_lists: dict[str, list[str]],
    *,
    request_number: int | None = None,
) -> Checked:
    """Check ``form`` against the catalog and the other requests; a 422 problem lists every bad field."""
    catalog = await catalog_store.catalog_view(session, form.experiment, run_span(form), mailing_lists)
    if catalog is None:
        known = ", ".join(row.experiment for row in await catalog_store.experiments(session)) or "none"
        unknown = f"unknown experiment {form.experiment!r}; known: {known}"
        raise _invalid([_field_error("experiment", unknown, "unknown_experiment")])
    errors = check_request(form, catalog)
    holder = await label_holder(session, form.experiment, form.label, exclude=request_number)
    if holder is not None:
        taken = f"label {form.label!r} is already used by request {public_id(holder)} of {form.experiment}"
        errors.insert(0, _field_error("label", taken, "label_taken"))
    if errors:
        raise _invalid(errors)
    request_id = public_id(request_number) if request_number is not None else None
    return Checked(form, catalog, build_jobs_file(form, catalog, request_id))


async def label_holder(session: AsyncSession, experiment: str, label: str, *, exclude: int | None) -> int | None:
    """The request that holds ``label`` in ``experiment`` (other than ``exclude``), if any."""
    query = select(RequestRow.id).where(RequestRow.experiment == experiment, RequestRow.label_claim == label)
    if exclude is not None:
        query = query.where(RequestRow.id != exclude)
    return (await session.exec(query.limit(1))).first()


def _label_problem(form: RequestForm) -> Problem:
    taken = f"label {form.label!r} was just taken by another request of {form.experiment}"
    return _invalid([_field_error("label", taken, "label_taken")])


def _field_error(field: str, message: str, kind: str) -> FieldError:
    return FieldError(field=field, message=message, type=kind)


async def file(
    session: AsyncSession, form: RequestForm, requester: Identity, mailing_lists: dict[str, list[str]]
) -> RequestRow:
    """File a new request as a draft."""
    await check(session, form, mailing_lists)
    now = utc_now()
    row = RequestRow(
        **_form_fields(form),
        label_claim=form.label,
        state=states.DRAFT,
        requester=requester.user,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        await session.rollback()
        raise _label_problem(form) from exc
    assert row.id is not None
    session.add(HistoryRow(request_id=row.id, state=states.DRAFT, at=now, by=requester.user, note="filed"))
    await session.commit()
    return row


def _form_fields(form: RequestForm) -> dict[str, Any]:
    data = form.model_dump(mode="json")
    data["modules"] = [m.model_dump(mode="json", exclude_none=True) for m in form.modules]
    return data


def form_of(row: RequestRow) -> RequestForm:
    """The form a stored request was filed with (as edited)."""
    return RequestForm.model_validate(
        {
            "experiment": row.experiment,
            "title": row.title,
            "kind": row.kind,
            "rat_v": row.rat_v,
            "modules": row.modules,
            "label": row.label,
            "ratdb_tag": row.ratdb_tag,
            "contacts": row.contacts,
            "site": row.site,
            "justification": row.justification,
            "priority": row.priority,
        }
    )


async def get(session: AsyncSession, request_id: str, identity: Identity) -> RequestRow:
    """A request the caller may see, or a 404/403 problem."""
    number = row_number(request_id)
    row = await session.get(RequestRow, number) if number is not None else None
    if row is None:
        raise not_found("Request", request_id)
    identity.require_experiment(row.experiment)
    return row


def _require_owner(row: RequestRow, identity: Identity, action: str, *, managers_too: bool) -> None:
    if row.requester == identity.user or (managers_too and identity.has_role("manager")):
        return
    who = "its requester or a manager" if managers_too else "its requester"
    raise Problem(403, "Forbidden", f"only {who} may {action} {public_id(row.id or 0)}", kind="forbidden")


async def patch(
    session: AsyncSession,
    row: RequestRow,
    changes: RequestPatch,
    identity: Identity,
    mailing_lists: dict[str, list[str]],
) -> RequestRow:
    """Change a draft; the whole request is checked again."""
    _require_owner(row, identity, "edit", managers_too=False)
    if row.state != states.DRAFT:
        raise Problem(
            409,
            "Conflict",
            f"{public_id(row.id or 0)} is {row.state}: only drafts can be edited",
            kind="not-a-draft",
            state=row.state,
            allowed=list(states.TRANSITIONS[row.state]),
        )
    merged = {**form_of(row).model_dump(mode="json"), **changes.model_dump(mode="json", exclude_unset=True)}
    try:
        form = RequestForm.model_validate(merged)
    except ValidationError as exc:  # a field set to null that may not be null
        raise validation_problem([dict(e) for e in exc.errors()]) from exc
    await check(session, form, mailing_lists, request_number=row.id)
    for name, value in _form_fields(form).items():
        setattr(row, name, value)
    row.label_claim = form.label
    row.updated_at = utc_now()
    session.add(row)
    try:
        await commit(session, row)
    except IntegrityError as exc:
        await session.rollback()
        raise _label_problem(form) from exc
    return row


async def move(session: AsyncSession, row: RequestRow, wanted: str, by: str, note: str) -> str:
    """Apply a state change with its history row; returns the former state."""
    try:
        states.check_transition(row.state, wanted)
    except states.IllegalTransition as exc:
        raise Problem(
            409,
            "Illegal transition",
            str(exc),
            kind="illegal-transition",
            state=exc.current,
            wanted=exc.wanted,
            allowed=exc.allowed,
        ) from exc
    former = row.state
    if states.releases_label(former, wanted):
        row.label_claim = None
    now = utc_now()
    row.state = wanted
    row.updated_at = now
    session.add(row)
    assert row.id is not None
    session.add(HistoryRow(request_id=row.id, state=wanted, at=now, by=by, note=note))
    await commit(session, row, flush_only=True)  # claims the request now: a concurrent move fails here
    return former


def _event_data(row: RequestRow, **extra: Any) -> dict[str, Any]:
    return {"request_id": public_id(row.id or 0), "label": row.label, "kind": row.kind, **extra}


async def submit(session: AsyncSession, row: RequestRow, identity: Identity, note: str) -> RequestRow:
    """Hand a draft to the managers."""
    _require_owner(row, identity, "submit", managers_too=True)
    await move(session, row, states.SUBMITTED, identity.user, note)
    add_event(
        session,
        "request.submitted",
        subject=public_id(row.id or 0),
        experiment=row.experiment,
        data=_event_data(row, requester=row.requester, site=row.site),
    )
    await commit(session, row)
    return row


async def approve(
    session: AsyncSession,
    row: RequestRow,
    identity: Identity,
    note: str,
    mailing_lists: dict[str, list[str]],
    public_url: str,
) -> RequestRow:
    """Approve: generate and store jobs.json, queue the mail and ``request.approved``, all in one commit.

    The mail goes to the contacts and the experiment's mailing list, less those who turned approval mails off.
    """
    identity.require_experiment(row.experiment)
    await move(session, row, states.APPROVED, identity.user, note)
    checked = await check(session, form_of(row), mailing_lists, request_number=row.id)
    jobs_file = checked.jobs_file
    request_id = public_id(row.id or 0)
    row.jobs_json, row.jobs_json_sha256, row.n_jobs = jobs_file.content, jobs_file.sha256, jobs_file.jobs
    to = await preferences.wanted(session, "approval", recipients(row.contacts, checked.catalog.mailing_list))
    if to:
        add_mail(
            session,
            approval_mail(
                request_id=request_id,
                experiment=row.experiment,
                label=row.label,
                title=row.title,
                approver=identity.user,
                note=note,
                jobs=jobs_file.jobs,
                sha256=jobs_file.sha256,
                jobs_json=jobs_file.content,
                to=to,
                public_url=public_url,
            ),
            row.id,
        )
    add_event(
        session,
        "request.approved",
        subject=request_id,
        experiment=row.experiment,
        data=_event_data(
            row,
            site=row.site,
            database=DATABASE_OF_KIND[row.kind],
            jobs_json=jobs_json_path(request_id),
            jobs_json_sha256=jobs_file.sha256,
        ),
    )
    await commit(session, row)
    return row


async def reject(session: AsyncSession, row: RequestRow, identity: Identity, note: str) -> RequestRow:
    """Refuse a submitted request (its label is free again)."""
    identity.require_experiment(row.experiment)
    await move(session, row, states.REJECTED, identity.user, note)
    add_event(
        session,
        "request.rejected",
        subject=public_id(row.id or 0),
        experiment=row.experiment,
        data=_event_data(row, note=note),
    )
    await commit(session, row)
    return row


async def cancel(session: AsyncSession, row: RequestRow, identity: Identity, note: str) -> RequestRow:
    """Withdraw an open request."""
    _require_owner(row, identity, "cancel", managers_too=True)
    former = await move(session, row, states.CANCELLED, identity.user, note)
    add_event(
        session,
        "request.cancelled",
        subject=public_id(row.id or 0),
        experiment=row.experiment,
        data=_event_data(row, note=note, previous_state=former),
    )
    await commit(session, row)
    return row
