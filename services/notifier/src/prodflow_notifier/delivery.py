"""Delivery: per subscription, the oldest undelivered outbox row, POSTed signed; retried with back-off, in order.

A bounded pool of workers (``NOTIFIER_WORKERS``) takes subscriptions, not rows: a subscription's rows go one after
the other (head of line: nothing newer goes before an older one is acknowledged), and a slow or dead receiver
holds only its own worker. A row is marked delivered after its 2xx, so a process killed meanwhile repeats only
that one row.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from prodflow_core.waiting import first_of
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from prodflow_notifier.models import OutboxRow, SubscriptionRow, WebhookEventRow
from prodflow_notifier.recording import Outcome, Recorder
from prodflow_notifier.safety import read_capped
from prodflow_notifier.signing import webhook_headers

_log = logging.getLogger("prodflow.notifier.delivery")
CONTENT_TYPE = "application/json"
USER_AGENT = "prodflow-notifier/0.1 (Standard Webhooks)"
_READ_AHEAD = 20


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter, and when to give up."""

    base_s: float
    max_s: float
    give_up_after_s: float

    def pause(self, failures: int) -> float:
        """The pause after the ``failures``-th failure in a row: half the capped doubling, plus up to as much again."""
        cap = min(self.max_s, self.base_s * float(2 ** (failures - 1)))
        return cap / 2 + random.uniform(0, cap / 2)  # noqa: S311 - jitter, not a secret


@dataclass(frozen=True)
class Attempt:
    """What one POST came to."""

    status_code: int | None
    latency_ms: float
    error: str | None

    @property
    def ok(self) -> bool:
        """A 2xx within the timeout."""
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def signing_secrets(subscription: SubscriptionRow, now: float) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during a rotation's overlap."""
    overlapping = subscription.previous_secret and subscription.previous_until and now < subscription.previous_until
    return [subscription.secret, subscription.previous_secret] if overlapping else [subscription.secret]  # type: ignore[list-item]


async def post(client: httpx.AsyncClient, subscription: SubscriptionRow, event_id: str, body: bytes) -> Attempt:
    """POST one signed delivery; redirects are failures and at most 64 KiB of the answer is read."""
    now = time.time()
    headers = webhook_headers(signing_secrets(subscription, now), event_id, int(now), body)
    headers.update({"content-type": CONTENT_TYPE, "user-agent": USER_AGENT})
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    answer = b""
    try:
        async with client.stream("POST", subscription.url, content=body, headers=headers) as response:
            status = response.status_code
            answer = await read_capped(response)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    latency_ms = (time.perf_counter() - started) * 1000
    if status is not None and not 200 <= status < 300:
        error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        if answer:
            error += ": " + answer[:200].decode(errors="replace")
    return Attempt(status, round(latency_ms, 2), error)


class Deliverer:
    """Runs the delivery workers: woken when rows are added, polling as a fallback."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        retry: RetryPolicy,
        *,
        workers: int,
        poll_s: float,
        deliveries_kept: int,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.retry = retry
        self.poll_s = poll_s
        self.recorder = Recorder(sessions, deliveries_kept)
        self._slots = asyncio.Semaphore(workers)
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due rows now (new rows, a subscription re-enabled)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hand subscriptions with a due head row to workers until ``stop``."""
        try:
            while not stop.is_set():
                self._wake.clear()
                next_due = await self._dispatch(stop)
                wait_s = self.poll_s if next_due is None else min(self.poll_s, max(0.0, next_due - time.time()))
                await first_of(stop, self._wake, timeout_s=wait_s)
        finally:
            for task in self._busy.values():
                task.cancel()
            await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def _dispatch(self, stop: asyncio.Event) -> float | None:
        """Start a worker for each idle subscription whose head is due; the earliest time one is due later."""
        async with self.sessions() as session:
            heads = await _heads(session)
        now, next_due = time.time(), None
        for subscription_id, due_at in heads:
            if subscription_id in self._busy:
                continue
            if due_at <= now:
                task = asyncio.create_task(self._drain(subscription_id, stop), name=f"deliver-{subscription_id}")
                self._busy[subscription_id] = task
            else:
                next_due = due_at if next_due is None else min(next_due, due_at)
        return next_due

    async def _drain(self, subscription_id: str, stop: asyncio.Event) -> None:
        try:
            async with self._slots:
                while not stop.is_set() and await self._deliver_next(subscription_id, stop):
                    pass
        except Exception:
            _log.exception("delivery to subscription %s failed", subscription_id)
        finally:
            del self._busy[subscription_id]
            self._wake.set()

    async def _deliver_next(self, subscription_id: str, stop: asyncio.Event) -> bool:
        """Deliver the subscription's next undelivered rows in order while they succeed; True to look again."""
        async with self.sessions() as session:
            subscription = await session.get(SubscriptionRow, subscription_id)
            if subscription is None or not subscription.active or subscription.state != "ok":
                return False
            rows = await _next_rows(session, subscription_id)
        if not rows:
            return False
        for row, body in rows:
            if stop.is_set() or row.next_at > time.time():
                return False
            attempt = await post(self.client, subscription, row.event_id, body)
            failures = row.attempts + 1
            pause = 0.0 if attempt.ok else self.retry.pause(failures)
            await self.recorder.record(
                Outcome(
                    row_id=row.id or 0,
                    subscription_id=subscription_id,
                    event_id=row.event_id,
                    ok=attempt.ok,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                    at=time.time(),
                    pause_s=pause,
                    give_up_after_s=self.retry.give_up_after_s,
                )
            )
            if not attempt.ok:
                return False
        return len(rows) == _READ_AHEAD


async def _next_rows(session: AsyncSession, subscription_id: str) -> list[tuple[OutboxRow, bytes]]:
    """The subscription's oldest undelivered rows with their bodies, in delivery order."""
    rows = (await session.exec(next_rows_query(subscription_id))).all()
    return [(row, body.encode()) for row, body in rows]


def next_rows_query(subscription_id: str) -> Select[OutboxRow, str]:
    """The query of :func:`_next_rows` (a seek into the subscription's line of ``ix_webhook_outbox_line``)."""
    return (
        select(OutboxRow, WebhookEventRow.body)
        .join(WebhookEventRow, col(WebhookEventRow.id) == col(OutboxRow.event_id))
        .where(OutboxRow.subscription_id == subscription_id, col(OutboxRow.delivered_at).is_(None))
        .order_by(col(OutboxRow.id))
        .limit(_READ_AHEAD)
    )


async def _heads(session: AsyncSession) -> list[tuple[str, float]]:
    """(subscription, when its head row is due) for each active, non-failing subscription with undelivered rows."""
    return [(sid, due) for sid, due in (await session.exec(heads_query())).all() if due is not None]


def heads_query() -> Select[str, Any]:
    """The query of :func:`_heads`: one seek per subscription into ``ix_webhook_outbox_line``, so its cost follows
    the number of subscriptions, not the rows waiting behind a receiver that is down."""
    head_due = (
        select(OutboxRow.next_at)
        .where(col(OutboxRow.subscription_id) == col(SubscriptionRow.id), col(OutboxRow.delivered_at).is_(None))
        .order_by(col(OutboxRow.id))
        .limit(1)
        .correlate(SubscriptionRow)
        .scalar_subquery()
    )
    return select(SubscriptionRow.id, head_due).where(col(SubscriptionRow.active), SubscriptionRow.state == "ok")
