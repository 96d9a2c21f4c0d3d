"""The notifier app factory: one follower of the event stream filling the outbox, and the delivery workers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prodflow_core.service import Workers, couch_resources, create_service_app
from prodflow_core.sql import sql_database

from prodflow_notifier.delivery import Deliverer, RetryPolicy
from prodflow_notifier.intake import Intake
from prodflow_notifier.models import TABLES
from prodflow_notifier.routes import webhooks
from prodflow_notifier.safety import DestinationPolicy, guarded_client
from prodflow_notifier.settings import NotifierSettings

NAME = "notifier"
_log = logging.getLogger("prodflow.notifier")


def _positioned(intake: Intake) -> Callable[[], Awaitable[None]]:
    """Healthy once the follower has a stored position (events stored from then on are delivered)."""

    async def check() -> None:
        if not intake.positioned.is_set():
            raise RuntimeError("the event stream's follower has no position yet")

    return check


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    """Build the notifier app; ``uvicorn prodflow_notifier.app:create_app --factory`` serves it."""
    settings = settings or NotifierSettings()
    policy = DestinationPolicy.of(settings.allowed_networks, settings.allowed_hosts)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        app.state.policy = policy
        workers = Workers()
        client = guarded_client(
            policy, connect_s=settings.connect_timeout_s, read_s=settings.read_timeout_s, connections=settings.workers
        )
        async with sql_database(app, settings.sql_url(), TABLES), couch_resources(app, settings), client:
            retry = RetryPolicy(settings.retry_base_s, settings.retry_max_s, settings.give_up_after_s)
            deliverer = Deliverer(
                app.state.sessions,
                client,
                retry,
                workers=settings.workers,
                poll_s=settings.poll_s,
                deliveries_kept=settings.deliveries_kept,
            )
            app.state.deliverer = deliverer
            intake = Intake(app.state.sessions, deliverer.wake)
            follower = intake.follower(
                app.state.events.db, longpoll_s=settings.events_longpoll_s, settle_s=settings.events_settle_s
            )
            app.state.health_checks["events"] = _positioned(intake)
            following = workers.start("event-follower", follower.run(workers.stop))
            workers.start("deliveries", deliverer.run(workers.stop))
            try:
                yield
            finally:
                # Safe to cut short: the checkpoint commits with the rows of its batch.
                following.cancel()
                await workers.aclose()

    return create_service_app(
        name=NAME,
        title="prodflow notifier",
        description="Webhooks: the event stream pushed to other tools' endpoints, signed per Standard Webhooks.",
        settings=settings,
        lifespan=lifespan,
        routers=[webhooks.router],
    )
