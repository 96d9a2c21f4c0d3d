"""Finding requests the caller may see, and describing them as the API answers them."""

from __future__ import annotations

from collections.abc import Sequence

from prodflow_core.experiment_scope import newest_first, readable_experiments, scoped
from prodflow_core.identity import Identity
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import states
from prodflow_request_api.models import HistoryRow, MailRow, RequestRow
from prodflow_request_api.requests import jobs_json_path, public_id
from prodflow_request_api.schemas import HistoryEntry, MailStatus, RequestOut


async def search(
    session: AsyncSession,
    identity: Identity,
    *,
    experiment: str | None,
    state: str | None,
    label: str | None,
    requester: str | None,
    limit: int,
    offset: int = 0,
    before: int | None = None,
) -> tuple[list[RequestRow], int, bool]:
    """A page of the requests the caller may see, newest first (``before``: only older than that request number),
    how many match in all, and whether more follow the page.

    One query per experiment the caller may see (:mod:`prodflow_core.experiment_scope`), each entered on an
    ``(experiment, ...)`` index: no other experiment's request is read, whatever the other filters.
    """
    query = select(RequestRow)
    for column, value in ((RequestRow.state, state), (RequestRow.label, label), (RequestRow.requester, requester)):
        if value is not None:
            query = query.where(column == value)
    parts = scoped(query, RequestRow.experiment, readable_experiments(identity, experiment))
    total = 0
    for part in parts:
        total += (await session.exec(select(func.count()).select_from(part.subquery()))).one()
    if before is not None:
        parts = [part.where(col(RequestRow.id) < before) for part in parts]
    rows = await newest_first(session, parts, RequestRow.id, limit=limit + 1, offset=offset)
    return rows[:limit], total, len(rows) > limit


async def describe(session: AsyncSession, rows: Sequence[RequestRow], *, detail: bool) -> list[RequestOut]:
    """The API view of requests; ``detail`` adds history and notifications."""
    numbers = [row.id for row in rows if row.id is not None]
    history: dict[int, list[HistoryEntry]] = {n: [] for n in numbers}
    mails: dict[int, list[MailStatus]] = {n: [] for n in numbers}
    if detail and numbers:
        for h in await session.exec(
            select(HistoryRow).where(col(HistoryRow.request_id).in_(numbers)).order_by(col(HistoryRow.id))
        ):
            history[h.request_id].append(HistoryEntry(state=h.state, at=h.at, by=h.by, note=h.note))
        for m in await session.exec(
            select(MailRow).where(col(MailRow.request_id).in_(numbers)).order_by(col(MailRow.id))
        ):
            if m.request_id is not None:
                mails[m.request_id].append(_mail_status(m))
    return [_out(row, history.get(row.id or 0, []), mails.get(row.id or 0, [])) for row in rows]


def _mail_status(m: MailRow) -> MailStatus:
    status = "sent" if m.sent_at else "failed" if m.failed_at else "pending"
    return MailStatus(
        recipients=m.recipients,
        subject=m.subject,
        status=status,
        attempts=m.attempts,
        last_error=m.last_error,
        sent_at=m.sent_at,
    )


def _out(row: RequestRow, history: list[HistoryEntry], mails: list[MailStatus]) -> RequestOut:
    request_id = public_id(row.id or 0)
    return RequestOut(
        id=request_id,
        experiment=row.experiment,
        title=row.title,
        kind=row.kind,
        rat_v=row.rat_v,
        modules=row.modules,
        label=row.label,
        ratdb_tag=row.ratdb_tag,
        contacts=row.contacts,
        site=row.site,
        justification=row.justification,
        priority=row.priority,
        state=row.state,
        requester=row.requester,
        created_at=row.created_at,
        updated_at=row.updated_at,
        allowed=list(states.TRANSITIONS[row.state]),
        jobs=row.n_jobs,
        jobs_json=jobs_json_path(request_id) if row.jobs_json is not None else None,
        jobs_json_sha256=row.jobs_json_sha256,
        campaign_id=row.campaign_id,
        history=history,
        notifications=mails,
    )
