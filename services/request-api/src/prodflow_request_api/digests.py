"""Failure digests: what failed in an experiment, grouped per label and site, mailed to its support list.

The follower turns ``job.failed``, ``job.retried`` (lost jobs, failed transfers) and ``site.drained`` events into
tally rows in SQL (one per event, kind, site, module and exit code; an event seen twice is counted once). The
digest worker then queues, per experiment, at most one mail per ``digest_interval_s``: it marks the rows it
reports and moves the experiment's clock in the transaction that puts the mail in the outbox, so a crash either
reports a failure once or leaves it for the next round. No failures, no mail.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prodflow_core.events import CloudEvent, utc_now
from prodflow_core.waiting import first_of
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api import catalog_store, preferences
from prodflow_request_api.mail import Mail, list_id, stop_lines, unsubscribe_url
from prodflow_request_api.models import DigestClockRow, FailureTallyRow
from prodflow_request_api.outbox import add_mail, at

_log = logging.getLogger("prodflow.request_api.digests")

KIND = "digest"
FOLLOWED = ("job.failed", "job.retried", "site.drained")
FINAL_KINDS = ("failed", "lost", "partFail")
"""Kinds of jobs that failed beyond their retries (``lost, retried`` and ``partFail, retried`` were tried again)."""
_EXIT_CODE = re.compile(r"exit code (-?\d+)")
_LOST = "lost by the backend"
_PART_FAIL = "outputs not transferred"


def failure_kind(reason: str, *, retried: bool) -> str | None:
    """The digest kind of a failed or retried job's reason; ``None`` for a retry the digest does not report."""
    kind = "lost" if _LOST in reason else "partFail" if _PART_FAIL in reason else "failed"
    if not retried:
        return kind
    return None if kind == "failed" else f"{kind}, retried"


def module_of(job_id: str) -> str:
    """The module of a job id (``job:label:module:run:chunk:p<pass>``)."""
    parts = job_id.split(":")
    return parts[2] if len(parts) >= 6 else ""


def exit_code(reason: str) -> str:
    """The exit code a reason names, or ``""``."""
    found = _EXIT_CODE.search(reason)
    return found.group(1) if found else ""


def tallies(event: CloudEvent, experiments: Sequence[str] = ()) -> list[FailureTallyRow]:
    """The tally rows of one followed event (none if it reports nothing a digest shows).

    A drained site serves every experiment: without an experiment of its own, it is reported to ``experiments``.
    """
    data, experiment, now = event.data, event.experiment, utc_now()
    if event.short_type == "site.drained":
        site = str(data.get("site") or event.subject or "")
        reason = str(data.get("reason") or "")[:500]
        return [
            FailureTallyRow(
                event_id=event.id,
                experiment=e,
                label="",
                site=site,
                kind="drained",
                count=1,
                example=reason,
                seen_at=now,
            )
            for e in ([experiment] if experiment else experiments)
        ]
    if not experiment:
        return []
    retried = event.short_type == "job.retried"
    reasons: Mapping[str, Any] = data.get("reasons") or {}
    sites: Mapping[str, Any] = data.get("sites") or {}
    groups: Counter[tuple[str, str, str, str]] = Counter()
    examples: dict[tuple[str, str, str, str], str] = {}
    for job_id in data.get("job_ids") or []:
        reason = str(reasons.get(job_id, ""))
        kind = failure_kind(reason, retried=retried)
        if kind is None:
            continue
        key = (str(sites.get(job_id) or ""), module_of(str(job_id)), kind, exit_code(reason))
        groups[key] += 1
        examples.setdefault(key, reason[:500])
    label = str(data.get("label") or "")
    return [
        FailureTallyRow(
            event_id=event.id,
            experiment=experiment,
            label=label,
            site=site,
            module=module,
            kind=kind,
            exit_code=code,
            count=n,
            example=examples[(site, module, kind, code)],
            seen_at=now,
        )
        for (site, module, kind, code), n in sorted(groups.items())
    ]


async def record(session: AsyncSession, event: CloudEvent) -> int:
    """Add the tallies of ``event`` (once per event id) in the caller's transaction; returns jobs counted."""
    everyone = [] if event.experiment else [row.experiment for row in await catalog_store.experiments(session)]
    rows = tallies(event, everyone)
    if not rows:
        return 0
    seen = await session.exec(select(FailureTallyRow.id).where(FailureTallyRow.event_id == event.id).limit(1))
    if seen.first() is not None:
        return 0
    session.add_all(rows)
    return sum(row.count for row in rows)


def digest_mail(experiment: str, rows: Sequence[FailureTallyRow], to: Sequence[str], public_url: str) -> Mail:
    """One mail with a section per label (and one for drained sites), a line per site in each."""
    by_label: dict[str, list[FailureTallyRow]] = defaultdict(list)
    for row in rows:
        by_label[row.label].append(row)
    jobs = sum(row.count for row in rows if row.kind != "drained")
    drained = len({row.site for row in rows if row.kind == "drained"})
    counted = f"{jobs} jobs in {len(by_label.keys() - {''})} labels" + (f", {drained} sites drained" if drained else "")
    lines = [f"Failures in {experiment} since the last digest: {counted}."]
    for label in sorted(by_label):
        lines += ["", f"== {label} ==" if label else "== sites drained by policy =="]
        lines += _site_lines(by_label[label])
    lines += stop_lines(KIND, public_url)
    return Mail(
        recipients=tuple(to),
        subject=f"[prodflow] {experiment} failure digest: {counted}",
        body="\n".join(lines) + "\n",
        list_id=list_id(KIND, experiment),
        unsubscribe=unsubscribe_url(public_url),
        kind=KIND,
    )


def _site_lines(rows: Sequence[FailureTallyRow]) -> list[str]:
    by_site: dict[str, list[FailureTallyRow]] = defaultdict(list)
    for row in rows:
        by_site[row.site].append(row)
    lines = []
    for site in sorted(by_site):
        kinds: Counter[str] = Counter()
        codes: dict[str, Counter[str]] = defaultdict(Counter)
        for row in by_site[site]:
            kinds[row.kind] += row.count
            if row.exit_code:
                codes[row.module][row.exit_code] += row.count
        if "drained" in kinds:
            example = next((r.example for r in by_site[site] if r.example), "")
            lines.append(f"  site {site or 'unknown'}: drained" + (f" ({example})" if example else ""))
            continue
        summary = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        lines.append(f"  site {site or 'unknown'}: {summary}")
        for module in sorted(codes):
            shown = ", ".join(f"exit {code} x{n}" for code, n in codes[module].most_common(3))
            lines.append(f"    {module}: {shown}")
    return lines


async def _claim(session: AsyncSession, experiment: str, now: str, interval_s: float) -> bool:
    """Move the experiment's clock to ``now`` unless a digest went out within ``interval_s`` (or meanwhile)."""
    clock = await session.get(DigestClockRow, experiment)
    if clock is None:
        session.add(DigestClockRow(experiment=experiment, last_digest_at=now))
        await session.flush()  # a replica that inserted first makes this fail: it sends, this one does not
        return True
    if clock.last_digest_at > at(-interval_s):
        return False
    moved = await session.exec(
        update(DigestClockRow)
        .where(col(DigestClockRow.experiment) == experiment, col(DigestClockRow.last_digest_at) == clock.last_digest_at)
        .values(last_digest_at=now)
    )
    return moved.rowcount == 1


class Digests:
    """Queues each experiment's digest when it is due; :meth:`run` until stopped."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        wake: Callable[[], None],
        *,
        interval_s: float,
        gather_s: float,
        poll_s: float,
        mailing_lists: dict[str, list[str]],
        public_url: str,
    ) -> None:
        self.sessions = sessions
        self.wake = wake
        self.interval_s = interval_s
        self.gather_s = gather_s
        self.poll_s = poll_s
        self.mailing_lists = mailing_lists
        self.public_url = public_url

    async def flush_due(self) -> int:
        """Queue every due digest; returns how many mails were queued."""
        async with self.sessions() as session:
            pending = await session.exec(
                select(FailureTallyRow.experiment, func.min(FailureTallyRow.seen_at))
                .where(col(FailureTallyRow.digested_at).is_(None))
                .group_by(col(FailureTallyRow.experiment))
            )
            due = [experiment for experiment, first in pending.all() if first <= at(-self.gather_s)]
        queued = 0
        for experiment in due:
            try:
                queued += await self._flush(experiment)
            except IntegrityError:
                _log.info("digest of %s queued by another replica", experiment)
        if queued:
            self.wake()
        return queued

    async def _flush(self, experiment: str) -> int:
        async with self.sessions() as session:
            now = utc_now()
            if not await _claim(session, experiment, now, self.interval_s):
                await session.rollback()
                return 0
            rows = list(
                (
                    await session.exec(
                        select(FailureTallyRow).where(
                            FailureTallyRow.experiment == experiment, col(FailureTallyRow.digested_at).is_(None)
                        )
                    )
                ).all()
            )
            for row in rows:
                row.digested_at = now
                session.add(row)
            to = await self._recipients(session, experiment)
            if rows and to:
                add_mail(session, digest_mail(experiment, rows, to, self.public_url), None)
            await session.commit()
            _log.info("digest of %s: %d tallies, to %s", experiment, len(rows), ", ".join(to) or "nobody")
            return 1 if rows and to else 0

    async def _recipients(self, session: AsyncSession, experiment: str) -> tuple[str, ...]:
        row = await catalog_store.experiment(session, experiment)
        if row is None:
            return ()
        return await preferences.wanted(session, KIND, preferences.support_list(row, self.mailing_lists))

    async def run(self, stop: asyncio.Event) -> None:
        """Queue due digests until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.flush_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("digest round failed; retrying")
            await first_of(stop, timeout_s=self.poll_s)
