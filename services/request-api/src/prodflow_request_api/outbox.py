"""The outboxes: mails and events written with the change they report, delivered after commit, retried.

A change and its mail/event rows commit in one transaction, so an approval is never lost to an SMTP or CouchDB
outage: the workers here deliver what is due, back off on failure and try again. Several replicas may run them:
a mail is leased before it is sent, and events carry fixed ids, so publishing one twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prodflow_core.events import EventPublisher, make_event, new_event_id, utc_now
from prodflow_core.waiting import first_of
from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api.mail import Mail, MailNotConfigured, SmtpConfig, send
from prodflow_request_api.models import EventRow, MailRow

_log = logging.getLogger("prodflow.request_api.outbox")
_SEND_TIMEOUTS = 4  # a whole SMTP exchange may take this many of the per-operation timeouts, never more
_LEASE_MARGIN_S = 5.0
_BATCH = 100


def at(seconds_from_now: float = 0.0) -> str:
    """An RFC 3339 UTC time ``seconds_from_now`` away, in the fixed-width form of :func:`utc_now`."""
    when = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def add_event(
    session: AsyncSession, short_type: str, *, subject: str, experiment: str, data: dict[str, Any]
) -> EventRow:
    """Put an event in the outbox, in the caller's transaction."""
    row = EventRow(
        event_id=new_event_id(),
        type=short_type,
        subject=subject,
        experiment=experiment,
        data=data,
        created_at=utc_now(),
    )
    session.add(row)
    return row


def add_mail(session: AsyncSession, mail: Mail, request_id: int | None) -> MailRow:
    """Put a mail in the outbox, in the caller's transaction."""
    now = utc_now()
    row = MailRow(
        request_id=request_id,
        recipients=list(mail.recipients),
        subject=mail.subject,
        body=mail.body,
        attachment_name=mail.attachment_name,
        attachment=mail.attachment,
        html=mail.html,
        list_id=mail.list_id,
        unsubscribe=mail.unsubscribe,
        kind=mail.kind,
        dedup_key=mail.dedup_key,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    return row


async def already_queued(session: AsyncSession, dedup_key: str) -> bool:
    """True if a mail with ``dedup_key`` is in the outbox (queued, sent or given up)."""
    found = await session.exec(select(MailRow.id).where(MailRow.dedup_key == dedup_key).limit(1))
    return found.first() is not None


def mail_of(row: MailRow) -> Mail:
    """The mail an outbox row holds."""
    return Mail(
        tuple(row.recipients),
        row.subject,
        row.body,
        row.attachment_name,
        row.attachment,
        html=row.html,
        list_id=row.list_id,
        unsubscribe=row.unsubscribe,
        kind=row.kind,
        dedup_key=row.dedup_key,
    )


def retry_delay(attempts: int, first_s: float, max_s: float = 3600.0) -> float:
    """The pause after ``attempts`` failed deliveries: ``first_s``, doubled each time, at most ``max_s``."""
    return float(min(first_s * 2 ** max(attempts - 1, 0), max_s))


class Outbox:
    """Delivers the mail and event outboxes; :meth:`wake` after a commit delivers at once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        smtp: SmtpConfig,
        *,
        max_attempts: int,
        retry_s: float,
        poll_s: float,
        retry_max_s: float = 3600.0,
    ) -> None:
        self.sessions = sessions
        self.publisher = publisher
        self.smtp = smtp
        self.max_attempts = max_attempts
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.poll_s = poll_s
        self._mail_due = asyncio.Event()
        self._events_due = asyncio.Event()

    def wake(self) -> None:
        """Something was added: deliver now rather than at the next poll."""
        self._mail_due.set()
        self._events_due.set()

    async def publish_pending(self) -> int:
        """Publish unpublished events in creation order; returns how many were published."""
        async with self.sessions() as session:
            rows = list(
                (
                    await session.exec(
                        select(EventRow)
                        .where(col(EventRow.published_at).is_(None))
                        .order_by(col(EventRow.created_at), col(EventRow.event_id))
                        .limit(_BATCH)
                    )
                ).all()
            )
            if not rows:
                return 0
            events = [
                make_event(
                    r.type,
                    self.publisher.source,
                    subject=r.subject,
                    experiment=r.experiment,
                    data=r.data,
                    event_id=r.event_id,
                )
                for r in rows
            ]
            await self.publisher.publish_many(events)
            now = utc_now()
            for row in rows:
                row.published_at = now
                session.add(row)
            await session.commit()
            return len(rows)

    async def deliver_due_mail(self) -> int:
        """Try every due mail once; returns how many were sent."""
        async with self.sessions() as session:
            due = list(
                (
                    await session.exec(
                        select(MailRow.id)
                        .where(col(MailRow.sent_at).is_(None), col(MailRow.failed_at).is_(None))
                        .where(col(MailRow.next_attempt_at) <= at())
                        .order_by(col(MailRow.next_attempt_at))
                        .limit(_BATCH)
                    )
                ).all()
            )
        sent = 0
        for mail_id in due:
            if mail_id is not None and await self._deliver(mail_id):
                sent += 1
        return sent

    async def _lease(self, session: AsyncSession, mail_id: int) -> bool:
        now = at()
        result = await session.exec(
            update(MailRow)
            .where(col(MailRow.id) == mail_id, col(MailRow.sent_at).is_(None))
            .where(or_(col(MailRow.lease_until).is_(None), col(MailRow.lease_until) < now))
            .values(lease_until=at(self._send_limit_s + _LEASE_MARGIN_S))
        )
        await session.commit()
        return result.rowcount == 1

    async def _deliver(self, mail_id: int) -> bool:
        async with self.sessions() as session:
            if not await self._lease(session, mail_id):
                return False  # another replica is sending it
            row = await session.get(MailRow, mail_id)
            if row is None:
                return False
            mail = mail_of(row)
            try:
                async with asyncio.timeout(self._send_limit_s):
                    await send(self.smtp, mail)
            except MailNotConfigured as exc:
                row.last_error = str(exc)
                row.next_attempt_at = at(self.retry_s)
                row.lease_until = None
                session.add(row)
                await session.commit()
                return False
            except Exception as exc:  # any SMTP/network failure: keep it, retry later
                self._failed(row, exc)
                session.add(row)
                await session.commit()
                return False
            row.attempts += 1
            row.sent_at = utc_now()
            row.last_error = None
            row.lease_until = None
            session.add(row)
            await session.commit()
            _log.info("mail %s sent to %s", mail_id, ", ".join(row.recipients))
            return True

    @property
    def _send_limit_s(self) -> float:
        """How long one send may take: its lease outlives it, so another replica never sends it meanwhile, and a
        mail whose sender was killed mid-send is due again this soon after (not minutes later)."""
        return _SEND_TIMEOUTS * self.smtp.timeout_s

    def _failed(self, row: MailRow, exc: Exception) -> None:
        row.attempts += 1
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        row.lease_until = None
        if row.attempts >= self.max_attempts:
            row.failed_at = utc_now()
            _log.error("mail %s given up after %d attempts: %s", row.id, row.attempts, row.last_error)
        else:
            row.next_attempt_at = at(retry_delay(row.attempts, self.retry_s, self.retry_max_s))
            _log.warning("mail %s failed (attempt %d): %s; retrying", row.id, row.attempts, row.last_error)

    async def run_mail(self, stop: asyncio.Event) -> None:
        """Deliver due mails until ``stop`` is set."""
        await self._loop(stop, self._mail_due, self.deliver_due_mail, "mail")

    async def run_events(self, stop: asyncio.Event) -> None:
        """Publish pending events until ``stop`` is set."""
        await self._loop(stop, self._events_due, self._publish_all, "events")

    async def _publish_all(self) -> int:
        total = 0
        while (published := await self.publish_pending()) > 0:
            total += published
        return total

    async def _loop(
        self, stop: asyncio.Event, due: asyncio.Event, work: Callable[[], Awaitable[int]], name: str
    ) -> None:
        while not stop.is_set():
            due.clear()
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("%s outbox round failed; retrying", name)
            await first_of(stop, due, timeout_s=self.poll_s)
