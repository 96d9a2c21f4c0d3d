"""The outcome of each delivery attempt, written with group commit: one transaction for what several workers did.

A worker waits until its outcome is committed before it takes its subscription's next row, so a process killed at
any moment repeats at most the deliveries whose 2xx was not yet written; concurrent workers share one commit
instead of queueing for SQLite's single writer one by one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from prodflow_core.events import utc_now
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_notifier.models import DeliveryRow, OutboxRow, SubscriptionRow

_log = logging.getLogger("prodflow.notifier.delivery")
_TRIM_EVERY = 50


@dataclass(frozen=True)
class Outcome:
    """One attempt at one outbox row: what the receiver answered and, on failure, when to try again."""

    row_id: int
    subscription_id: str
    event_id: str
    ok: bool
    status_code: int | None
    latency_ms: float
    error: str | None
    at: float
    pause_s: float
    give_up_after_s: float


class Recorder:
    """Writes outcomes in batches; :meth:`record` returns once its outcome is committed."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], deliveries_kept: int) -> None:
        self.sessions = sessions
        self.deliveries_kept = deliveries_kept
        self._pending: list[tuple[Outcome, asyncio.Future[int]]] = []
        self._writing: asyncio.Task[None] | None = None
        self._since_trim: dict[str, int] = {}

    async def record(self, outcome: Outcome) -> int:
        """Store ``outcome``; returns the row's attempt count after it."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((outcome, future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_all())
        return await future

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                attempts = await self._write(batch)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), count in zip(batch, attempts, strict=True):
                if not future.done():
                    future.set_result(count)

    async def _write(self, batch: list[tuple[Outcome, asyncio.Future[int]]]) -> list[int]:
        async with self.sessions() as session:
            ids = [outcome.row_id for outcome, _ in batch]
            rows = {r.id: r for r in (await session.exec(select(OutboxRow).where(col(OutboxRow.id).in_(ids)))).all()}
            sub_ids = {outcome.subscription_id for outcome, _ in batch}
            subs = {
                s.id: s
                for s in (await session.exec(select(SubscriptionRow).where(col(SubscriptionRow.id).in_(sub_ids)))).all()
            }
            counts = []
            for outcome, _ in batch:
                counts.append(
                    self._apply(session, rows.get(outcome.row_id), subs.get(outcome.subscription_id), outcome)
                )
            await session.flush()
            for outcome, _ in batch:
                await self._maybe_trim(session, outcome.subscription_id)
            await session.commit()
        return counts

    def _apply(
        self, session: AsyncSession, row: OutboxRow | None, subscription: SubscriptionRow | None, outcome: Outcome
    ) -> int:
        if row is None or subscription is None:
            return 0  # deleted meanwhile (the subscription, or a replay re-queued the event)
        row.attempts += 1
        if outcome.ok:
            row.delivered_at = outcome.at
        else:
            row.first_failed_at = row.first_failed_at or outcome.at
            row.next_at = outcome.at + outcome.pause_s
            if outcome.at - row.first_failed_at >= outcome.give_up_after_s and subscription.state != "failing":
                subscription.state, subscription.failing_since = "failing", utc_now()
                session.add(subscription)
                _log.warning("subscription %s is failing: gave up on event %s", subscription.id, row.event_id)
        session.add(row)
        session.add(
            DeliveryRow(
                subscription_id=outcome.subscription_id,
                event_id=outcome.event_id,
                attempt=row.attempts,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
                at=utc_now(),
            )
        )
        return row.attempts

    async def _maybe_trim(self, session: AsyncSession, subscription_id: str) -> None:
        """Trim a subscription's log every ``_TRIM_EVERY`` attempts (counted in memory: a restart only delays it)."""
        count = self._since_trim.get(subscription_id, 0) + 1
        self._since_trim[subscription_id] = count % _TRIM_EVERY
        if count >= _TRIM_EVERY:
            await trim_log(session, subscription_id, self.deliveries_kept)


async def trim_log(session: AsyncSession, subscription_id: str, kept: int) -> None:
    """Keep the newest ``kept`` attempts of a subscription."""
    newest = (
        select(DeliveryRow.id)
        .where(DeliveryRow.subscription_id == subscription_id)
        .order_by(col(DeliveryRow.id).desc())
        .limit(kept)
    )
    await session.exec(
        delete(DeliveryRow).where(
            col(DeliveryRow.subscription_id) == subscription_id, col(DeliveryRow.id).not_in(newest.scalar_subquery())
        )
    )
