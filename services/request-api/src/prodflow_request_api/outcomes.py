"""Outcome mails: a request's contacts learn once that it completed, failed, or that its campaign was cancelled.

Queued in the transaction that moves the request (or notes the cancellation), with a key that makes a second
queueing of the same outcome a no-op, so events delivered twice never mail twice.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from prodflow_core.events import utc_now
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import preferences
from prodflow_request_api.mail import Mail, list_id, stop_lines, unsubscribe_url
from prodflow_request_api.models import FailureTallyRow, HistoryRow, RequestRow
from prodflow_request_api.outbox import add_mail, already_queued

KIND = "outcome"


@dataclass(frozen=True)
class Outcome:
    """What an outcome mail reports about one request."""

    request_id: str
    experiment: str
    label: str
    title: str
    outcome: str  # completed | failed | cancelled
    counts: Mapping[str, int]
    events_done: int | None
    events_requested: int | None
    wall_time_s: float | None
    failing_modules: Mapping[str, Sequence[tuple[str, int]]]  # module → (exit code, jobs), most common first
    note: str = ""


def events_requested(jobs_json: Mapping[str, Any] | None) -> int | None:
    """Events the jobs.json asks for, or ``None`` if a module is by time (its events are not counted up front)."""
    if not jobs_json:
        return None
    total = 0
    for module in jobs_json.get("modules") or []:
        n_ev = module.get("n_ev")
        if n_ev is None:
            return None
        runs = module.get("run_numbers")
        total += int(n_ev) * (len(runs) if runs else 1)
    return total


def events_done(data: Mapping[str, Any], counts: Mapping[str, int], requested: int | None) -> int | None:
    """Events of completed jobs: from the event if it says so, else completed jobs' share of ``requested``."""
    given = data.get("events")
    if isinstance(given, Mapping) and isinstance(given.get("completed"), int):
        return int(given["completed"])
    if isinstance(given, int):
        return given
    jobs = sum(counts.values())
    if requested is None or not jobs:
        return None
    return requested * counts.get("completed", 0) // jobs


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days} d " if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"


def jobs_link(public_url: str, label: str, status: str) -> str:
    """The dashboard's list of a label's jobs in ``status``."""
    return f"{public_url.rstrip('/')}/#/jobs?label={quote(label)}&status={quote(status)}"


def outcome_mail(outcome: Outcome, to: Sequence[str], public_url: str) -> Mail:
    """The mail that tells a request's contacts how it ended."""
    label = outcome.label
    counts = ", ".join(f"{status} {n}" for status, n in sorted(outcome.counts.items())) or "none"
    done = "unknown" if outcome.events_done is None else f"{outcome.events_done:,}"
    asked = "not fixed (by time)" if outcome.events_requested is None else f"{outcome.events_requested:,}"
    lines = [
        f"The production request {outcome.request_id} of {outcome.experiment} {_verb(outcome.outcome)}.",
        "",
        f"  title:      {outcome.title}",
        f"  label:      {label}",
        f"  jobs:       {counts}",
        f"  events:     {done} done of {asked} requested",
        f"  wall time:  {_duration(outcome.wall_time_s)}",
    ]
    if outcome.note:
        lines += [f"  note:       {outcome.note}"]
    lines += [
        "",
        "Its .exactly file and its outputs:",
        f"  uv run prodflow label exactly {label} -o {label}.exactly",
        f"  uv run prodflow grab {label} --to ./{label}",
    ]
    if outcome.outcome == "failed":
        lines += ["", "Failing modules (exit codes, most common first):"]
        for module, codes in sorted(outcome.failing_modules.items()):
            shown = ", ".join(f"{code or 'none'} ({n} jobs)" for code, n in codes[:3])
            lines.append(f"  {module or 'unknown'}: {shown}")
        if not outcome.failing_modules:
            lines.append("  (no failure reports reached request-api)")
        lines += ["", f"The failed jobs: {jobs_link(public_url, label, 'failed')}"]
    lines += stop_lines(KIND, public_url)
    body = "\n".join(lines) + "\n"
    return Mail(
        recipients=tuple(to),
        subject=f"[prodflow] {outcome.experiment} request {outcome.request_id} {outcome.outcome}: {label}",
        body=body,
        html=_html(body, outcome, public_url),
        list_id=list_id(KIND, outcome.experiment),
        unsubscribe=unsubscribe_url(public_url),
        kind=KIND,
        dedup_key=f"{KIND}:{outcome.request_id}:{outcome.outcome}",
    )


def _verb(outcome: str) -> str:
    return {"completed": "has completed", "failed": "has failed", "cancelled": "had its campaign cancelled"}.get(
        outcome, outcome
    )


def _html(body: str, outcome: Outcome, public_url: str) -> str:
    link = ""
    if outcome.outcome == "failed":
        href = escape(jobs_link(public_url, outcome.label, "failed"))
        link = f'<p><a href="{href}">The failed jobs of {escape(outcome.label)}</a></p>'
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
        f"<h2>{escape(outcome.request_id)} {escape(outcome.outcome)}: {escape(outcome.label)}</h2>{link}"
        f'<pre style="font-family: monospace">{escape(body)}</pre></body></html>\n'
    )


async def failing_modules(session: AsyncSession, experiment: str, label: str) -> dict[str, list[tuple[str, int]]]:
    """Per module of ``label``: its exit codes of jobs failed beyond their retries, most common first."""
    rows = await session.exec(
        select(FailureTallyRow).where(FailureTallyRow.experiment == experiment, FailureTallyRow.label == label)
    )
    codes: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if row.kind in ("failed", "lost", "partFail"):
            codes[row.module][row.exit_code or row.kind] += row.count
    return {module: counter.most_common() for module, counter in codes.items()}


async def wall_time_s(session: AsyncSession, row: RequestRow) -> float | None:
    """Seconds from the request's approval to now."""
    approved = (
        await session.exec(
            select(HistoryRow.at)
            .where(HistoryRow.request_id == row.id, HistoryRow.state == "approved")
            .order_by(col(HistoryRow.id))
            .limit(1)
        )
    ).first()
    if approved is None:
        return None
    start = datetime.fromisoformat(approved.replace("Z", "+00:00"))
    return (datetime.fromisoformat(utc_now().replace("Z", "+00:00")) - start).total_seconds()


async def queue(
    session: AsyncSession,
    row: RequestRow,
    request_id: str,
    outcome: str,
    counts: Mapping[str, int],
    data: Mapping[str, Any],
    public_url: str,
    note: str = "",
) -> bool:
    """Queue the outcome mail of ``row`` in the caller's transaction; False if it was queued before or nobody
    wants it."""
    if await already_queued(session, f"{KIND}:{request_id}:{outcome}"):
        return False
    to = await preferences.wanted(session, KIND, row.contacts)
    if not to:
        return False
    requested = events_requested(json.loads(row.jobs_json) if row.jobs_json else None)
    report = Outcome(
        request_id=request_id,
        experiment=row.experiment,
        label=row.label,
        title=row.title,
        outcome=outcome,
        counts=dict(counts),
        events_done=events_done(data, counts, requested),
        events_requested=requested,
        wall_time_s=await wall_time_s(session, row),
        failing_modules=await failing_modules(session, row.experiment, row.label) if outcome == "failed" else {},
        note=note,
    )
    add_mail(session, outcome_mail(report, to, public_url), row.id)
    return True
