"""Subscriptions: who may manage which, and their life (create, change, rotate the secret, delete)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from prodflow_core.events import utc_now
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem, not_found
from sqlalchemy import func
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_notifier.models import DeliveryRow, OutboxRow, SubscriptionRow
from prodflow_notifier.schemas import WebhookCreated, WebhookIn, WebhookOut
from prodflow_notifier.signing import new_secret


def may_manage(identity: Identity, experiments: list[str]) -> bool:
    """Admins manage every subscription; managers those whose experiments are all theirs (never "all")."""
    if identity.has_role("admin"):
        return True
    return identity.has_role("manager") and bool(experiments) and all(identity.can_access(e) for e in experiments)


def require_manage(identity: Identity, experiments: list[str]) -> None:
    """A 403 problem unless ``identity`` may manage a subscription to ``experiments``."""
    if not may_manage(identity, experiments):
        scope = ", ".join(experiments) if experiments else "every experiment (admins only)"
        raise Problem(403, "Forbidden", f"{identity.user!r} may not manage webhooks of {scope}", kind="forbidden")


def rfc3339(unix_s: float) -> str:
    """Unix seconds as RFC 3339 UTC."""
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def pending_counts(session: AsyncSession, ids: list[str]) -> dict[str, int]:
    """Undelivered rows per subscription."""
    if not ids:
        return {}
    rows = await session.exec(
        select(OutboxRow.subscription_id, func.count())
        .where(col(OutboxRow.subscription_id).in_(ids), col(OutboxRow.delivered_at).is_(None))
        .group_by(col(OutboxRow.subscription_id))
    )
    return dict(rows.all())


def shown(row: SubscriptionRow, pending: int) -> WebhookOut:
    """The public view of a subscription (no secret)."""
    fields = row.model_dump(exclude={"secret", "previous_secret", "previous_until"})
    return WebhookOut(**fields, pending=pending)


async def create(session: AsyncSession, body: WebhookIn, identity: Identity) -> WebhookCreated:
    """Store a new subscription with a fresh secret; the answer carries the secret (the only time)."""
    require_manage(identity, body.experiments)
    now = utc_now()
    row = SubscriptionRow(
        id="wh-" + secrets.token_hex(8),
        owner=identity.user,
        url=body.url,
        description=body.description,
        event_types=list(body.event_types),
        experiments=sorted(set(body.experiments)),
        labels=sorted(set(body.labels)),
        active=body.active,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.commit()
    return WebhookCreated(**shown(row, 0).model_dump(), secret=row.secret)


async def visible(session: AsyncSession, identity: Identity) -> list[SubscriptionRow]:
    """Every subscription the caller may manage, oldest first."""
    rows = (await session.exec(select(SubscriptionRow).order_by(col(SubscriptionRow.created_at)))).all()
    return [row for row in rows if may_manage(identity, row.experiments)]


async def get(session: AsyncSession, subscription_id: str, identity: Identity) -> SubscriptionRow:
    """One subscription the caller may manage (404 if there is none, 403 if it is not theirs)."""
    row = await session.get(SubscriptionRow, subscription_id)
    if row is None:
        raise not_found("Webhook", subscription_id)
    require_manage(identity, row.experiments)
    return row


async def patch(session: AsyncSession, row: SubscriptionRow, changes: dict[str, Any], identity: Identity) -> bool:
    """Apply ``changes``; True when deliveries may resume (re-enabled). The new experiments must be the caller's."""
    if "experiments" in changes:
        changes["experiments"] = sorted(set(changes["experiments"]))
        require_manage(identity, changes["experiments"])
    if "labels" in changes:
        changes["labels"] = sorted(set(changes["labels"]))
    resumed = changes.get("active") is True and (not row.active or row.state != "ok")
    for name, value in changes.items():
        setattr(row, name, value)
    if resumed:
        await resume(session, row)
    row.updated_at = utc_now()
    session.add(row)
    await session.commit()
    return resumed


async def resume(session: AsyncSession, row: SubscriptionRow) -> None:
    """Mark ``row`` ok and its head row due now, with a fresh give-up period (no commit)."""
    row.state, row.failing_since = "ok", None
    head = (
        await session.exec(
            select(OutboxRow)
            .where(OutboxRow.subscription_id == row.id, col(OutboxRow.delivered_at).is_(None))
            .order_by(col(OutboxRow.id))
            .limit(1)
        )
    ).first()
    if head is not None:
        head.next_at, head.first_failed_at = 0.0, None
        session.add(head)


async def rotate(session: AsyncSession, row: SubscriptionRow, overlap_s: float) -> tuple[str, str | None]:
    """A new secret; the current one keeps signing beside it for ``overlap_s``. Returns (secret, old valid until)."""
    until = time.time() + overlap_s if overlap_s > 0 else None
    row.previous_secret, row.previous_until = (row.secret, until) if until else (None, None)
    row.secret = new_secret()
    row.updated_at = utc_now()
    session.add(row)
    await session.commit()
    return row.secret, rfc3339(until) if until else None


async def remove(session: AsyncSession, row: SubscriptionRow) -> None:
    """Delete a subscription with its outbox and delivery log."""
    await session.exec(delete(OutboxRow).where(col(OutboxRow.subscription_id) == row.id))
    await session.exec(delete(DeliveryRow).where(col(DeliveryRow.subscription_id) == row.id))
    await session.delete(row)
    await session.commit()


async def deliveries(session: AsyncSession, subscription_id: str, limit: int) -> list[DeliveryRow]:
    """The last ``limit`` attempts, newest first."""
    query = (
        select(DeliveryRow)
        .where(DeliveryRow.subscription_id == subscription_id)
        .order_by(col(DeliveryRow.id).desc())
        .limit(limit)
    )
    return list((await session.exec(query)).all())
