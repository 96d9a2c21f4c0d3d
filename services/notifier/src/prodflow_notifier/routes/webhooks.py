"""``/api/webhooks``: subscriptions (managers of their experiments, admins for all), deliveries, replay."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from prodflow_core.identity import Manager
from prodflow_core.problems import FieldError, Problem
from prodflow_core.sql import SessionDep

from prodflow_notifier import replay, subscriptions
from prodflow_notifier.deps import DelivererDep, PolicyDep, SettingsDep
from prodflow_notifier.safety import DestinationPolicy, RefusedDestination
from prodflow_notifier.schemas import (
    DeliveryList,
    DeliveryOut,
    ReplayIn,
    ReplayOut,
    RotateIn,
    SecretOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])
WebhookId = Annotated[str, Path(pattern=r"^wh-[0-9a-f]{16}$")]


async def _check_url(policy: DestinationPolicy, url: str) -> None:
    try:
        await policy.check_url(url)
    except RefusedDestination as exc:
        error = FieldError(field="url", message=str(exc), type="refused_destination")
        raise Problem(422, "Refused destination", str(exc), kind="refused-destination", errors=[error]) from exc


async def _one(session: SessionDep, subscription_id: str, identity: Manager) -> WebhookOut:
    row = await subscriptions.get(session, subscription_id, identity)
    counts = await subscriptions.pending_counts(session, [row.id])
    return subscriptions.shown(row, counts.get(row.id, 0))


@router.post("", status_code=201, summary="Subscribe a URL to events; the answer shows the secret, once")
async def create_webhook(body: WebhookIn, identity: Manager, session: SessionDep, policy: PolicyDep) -> WebhookCreated:
    subscriptions.require_manage(identity, body.experiments)
    await _check_url(policy, body.url)
    return await subscriptions.create(session, body, identity)


@router.get("", summary="The subscriptions the caller manages")
async def list_webhooks(identity: Manager, session: SessionDep) -> WebhookList:
    rows = await subscriptions.visible(session, identity)
    counts = await subscriptions.pending_counts(session, [row.id for row in rows])
    return WebhookList(items=[subscriptions.shown(row, counts.get(row.id, 0)) for row in rows])


@router.get("/{subscription_id}", summary="One subscription (never its secret)")
async def get_webhook(subscription_id: WebhookId, identity: Manager, session: SessionDep) -> WebhookOut:
    return await _one(session, subscription_id, identity)


@router.patch("/{subscription_id}", summary="Change a subscription; active=true resumes a failing one")
async def patch_webhook(
    subscription_id: WebhookId,
    body: WebhookPatch,
    identity: Manager,
    session: SessionDep,
    policy: PolicyDep,
    deliverer: DelivererDep,
) -> WebhookOut:
    row = await subscriptions.get(session, subscription_id, identity)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        await _check_url(policy, changes["url"])
    changes = {name: value for name, value in changes.items() if value is not None}
    if await subscriptions.patch(session, row, changes, identity):
        deliverer.wake()
    return await _one(session, subscription_id, identity)


@router.delete("/{subscription_id}", status_code=204, summary="Delete a subscription and its queue")
async def delete_webhook(subscription_id: WebhookId, identity: Manager, session: SessionDep) -> Response:
    await subscriptions.remove(session, await subscriptions.get(session, subscription_id, identity))
    return Response(status_code=204)


@router.post("/{subscription_id}/rotate-secret", summary="A new secret, shown once; the old one overlaps")
async def rotate_secret(
    subscription_id: WebhookId,
    identity: Manager,
    session: SessionDep,
    settings: SettingsDep,
    body: RotateIn | None = None,
) -> SecretOut:
    row = await subscriptions.get(session, subscription_id, identity)
    overlap = body.overlap_s if body is not None and body.overlap_s is not None else settings.rotation_overlap_s
    secret, until = await subscriptions.rotate(session, row, overlap)
    return SecretOut(id=row.id, secret=secret, previous_valid_until=until)


@router.get("/{subscription_id}/deliveries", summary="The last delivery attempts, newest first")
async def list_deliveries(
    subscription_id: WebhookId,
    identity: Manager,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> DeliveryList:
    await subscriptions.get(session, subscription_id, identity)
    rows = await subscriptions.deliveries(session, subscription_id, limit)
    return DeliveryList(items=[DeliveryOut(**row.model_dump(exclude={"id", "subscription_id"})) for row in rows])


@router.post("/{subscription_id}/replay", summary="Deliver again every matching event from one on, in order")
async def replay_events(
    subscription_id: WebhookId,
    body: ReplayIn,
    identity: Manager,
    session: SessionDep,
    request: Request,
    deliverer: DelivererDep,
) -> ReplayOut:
    row = await subscriptions.get(session, subscription_id, identity)
    events = await replay.events_from(request.app.state.events.db, row, body.from_event_id)
    queued = await replay.requeue(session, row, events)
    deliverer.wake()
    return ReplayOut(queued=queued)
