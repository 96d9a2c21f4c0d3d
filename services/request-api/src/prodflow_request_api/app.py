"""The request-api app factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prodflow_core.events import event_follower
from prodflow_core.service import Workers, couch_resources, create_service_app
from prodflow_core.sql import sql_database

from prodflow_request_api.catalog import load_seed
from prodflow_request_api.catalog_store import seed_catalog
from prodflow_request_api.digests import Digests
from prodflow_request_api.following import CONSUMER, FOLLOWED, RequestFollower
from prodflow_request_api.mail import SmtpConfig
from prodflow_request_api.models import TABLES
from prodflow_request_api.outbox import Outbox
from prodflow_request_api.routes import catalog, notifications, requests
from prodflow_request_api.settings import RequestApiSettings

NAME = "request-api"
_log = logging.getLogger("prodflow.request_api")


def create_app(settings: RequestApiSettings | None = None) -> FastAPI:
    """Build the request-api app; ``uvicorn prodflow_request_api.app:create_app --factory`` serves it."""
    settings = settings or RequestApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.database_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        workers = Workers()
        async with sql_database(app, settings.sql_url(), TABLES):
            sessions = app.state.sessions
            async with sessions() as session:
                added = await seed_catalog(session, load_seed(settings.catalog_seed))
            if added:
                _log.info("catalog seeded for %s", ", ".join(added))

            async with couch_resources(app, settings):
                outbox = Outbox(
                    sessions,
                    app.state.events,
                    SmtpConfig.from_settings(settings),
                    max_attempts=settings.mail_max_attempts,
                    retry_s=settings.mail_retry_s,
                    poll_s=settings.outbox_poll_s,
                    retry_max_s=settings.mail_retry_max_s,
                )
                app.state.outbox = outbox
                if not settings.smtp_host:
                    _log.warning("REQUEST_API_SMTP_HOST is not set: approval mails wait in the outbox")
                workers.start("mail-outbox", outbox.run_mail(workers.stop))
                workers.start("event-outbox", outbox.run_events(workers.stop))
                digests = Digests(
                    sessions,
                    outbox.wake,
                    interval_s=settings.digest_interval_s,
                    gather_s=settings.digest_gather_s,
                    poll_s=max(settings.outbox_poll_s, min(settings.digest_gather_s, 30.0)),
                    mailing_lists=settings.mailing_lists,
                    public_url=settings.public_url,
                )
                workers.start("failure-digests", digests.run(workers.stop))
                following = None
                if settings.follow_events:
                    handler = RequestFollower(sessions, outbox.wake, settings.public_url)
                    follower = event_follower(
                        app.state.events.db, CONSUMER, handler, types=FOLLOWED, longpoll_s=settings.events_longpoll_s
                    )
                    following = workers.start("event-follower", follower.run(workers.stop))
                try:
                    yield
                finally:
                    if following is not None:
                        # Safe to cut short: the checkpoint only moves after a batch was handled.
                        following.cancel()
                    await workers.aclose()

    return create_service_app(
        name=NAME,
        title="prodflow request-api",
        description="Production requests, approval, jobs.json and the module & run catalog.",
        settings=settings,
        lifespan=lifespan,
        routers=[requests.router, catalog.router, notifications.router],
    )
