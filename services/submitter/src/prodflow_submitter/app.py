"""The submitter app factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prodflow_core.couch import OwnWrites
from prodflow_core.counts import JobCounter, count_tables, keep_listing_indexes
from prodflow_core.events import CloudEvent, event_follower
from prodflow_core.jobdocs import ensure_job_databases
from prodflow_core.service import Workers, couch_resources, create_service_app
from prodflow_core.sql import sql_database

from prodflow_submitter.following import CONSUMER, FOLLOWED, on_request_approved
from prodflow_submitter.job_feed import job_feeds
from prodflow_submitter.models import TABLES
from prodflow_submitter.queue import SubmissionLoop
from prodflow_submitter.request_api import RequestApi
from prodflow_submitter.routes import campaigns, labels, sites
from prodflow_submitter.runtime import Runtime
from prodflow_submitter.settings import SubmitterSettings
from prodflow_submitter.sites import load_sites

NAME = "submitter"
_log = logging.getLogger("prodflow.submitter")


def create_app(settings: SubmitterSettings | None = None) -> FastAPI:
    """Build the submitter app; ``uvicorn prodflow_submitter.app:create_app --factory`` serves it."""
    settings = settings or SubmitterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        workers = Workers()
        request_api = RequestApi(
            settings.request_api_url, settings.identity_secret, timeout_s=settings.catalog_timeout_s
        )
        try:
            async with sql_database(app, settings.sql_url(), [*TABLES, *count_tables()]) as engine:
                await keep_listing_indexes(engine, kept=False)  # it lists no jobs: its counts write less
                sessions = app.state.sessions
                loaded = await load_sites(sessions, settings)
                if loaded:
                    _log.info("sites loaded: %s", ", ".join(loaded))

                async with couch_resources(app, settings) as client:
                    prefix = settings.job_database_prefix
                    databases = await ensure_job_databases(client, prefix=prefix, shards=settings.couchdb_job_shards)
                    for db in databases.values():
                        db.own_writes = OwnWrites()  # its job feeds take back what it wrote from memory
                    counter = JobCounter(engine, owner=NAME)
                    runtime = Runtime(settings, sessions, databases, app.state.events, request_api, counter)
                    app.state.runtime = runtime
                    app.state.loop = loop = SubmissionLoop(runtime)
                    runtime.on_created = loop.take_created
                    for feed in job_feeds(runtime, loop):
                        workers.start(f"jobs-feed-{feed.db.name}", feed.run(workers.stop))
                    if settings.run_submission_loop:
                        workers.start("submission-loop", loop.run(workers.stop))
                    if settings.follow_events:

                        async def handle(event: CloudEvent, _seq: str) -> None:
                            await on_request_approved(runtime, event)

                        follower = event_follower(
                            client.db(settings.events_db),
                            CONSUMER,
                            handle,
                            types=FOLLOWED,
                            longpoll_s=settings.changes_longpoll_s,
                        )
                        workers.start("request-follower", follower.run(workers.stop))
                    try:
                        yield
                    finally:
                        await workers.aclose()
        finally:
            await request_api.aclose()

    return create_service_app(
        name=NAME,
        title="prodflow submitter",
        description="Campaigns from jobs.json: job documents, .exactly, sites and compute backends.",
        settings=settings,
        lifespan=lifespan,
        routers=[campaigns.router, labels.router, sites.router],
    )
