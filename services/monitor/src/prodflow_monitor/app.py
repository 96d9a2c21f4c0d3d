"""The monitor app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prodflow_core.couch.changes import InMemoryCheckpoint
from prodflow_core.counts import JobCounter, count_tables, keep_listing_indexes
from prodflow_core.events import event_follower
from prodflow_core.service import Workers, couch_resources, create_service_app
from prodflow_core.sql import sql_database

from prodflow_monitor.archive.operation import ArchiveStores
from prodflow_monitor.archive.runner import Archivist
from prodflow_monitor.archive.tables import archive_tables
from prodflow_monitor.label_scope import LabelScopes
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.maintenance import Maintenance, runs_maintenance
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.provenance.peers import Peers
from prodflow_monitor.provenance.records import OutputRecords, provenance_tables
from prodflow_monitor.routes import archive, crates, grab, jobs, labels, metrics, provenance
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sharding import Shard
from prodflow_monitor.sites import SiteDirectory

NAME = "monitor"
SUBMITTED_SETTLE_S = 0.25
"""``jobs.submitted`` is read at most this often: a job feed that keeps up brings those jobs itself (the read then
only costs CouchDB a ``_changes`` request per submission round); one that is behind, a small campaign behind a big
one, gets them this much later at most."""


def create_app(settings: MonitorSettings | None = None) -> FastAPI:
    """Build the monitor app; ``uvicorn prodflow_monitor.app:create_app --factory`` serves it."""
    settings = settings or MonitorSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        async with (
            couch_resources(app, settings) as couch,
            sql_database(app, settings.sql_url(), [*count_tables(), *archive_tables(), *provenance_tables()]) as engine,
        ):
            await keep_listing_indexes(engine, kept=True)  # GET /api/jobs reads its pages from them
            sites = SiteDirectory(settings.submitter_url, settings.identity_secret, ttl_s=settings.sites_ttl_s)
            counter = JobCounter(engine, owner=f"monitor-{Shard(settings.replica_index, settings.replicas)}")
            records = app.state.output_records = OutputRecords(engine)
            loop = MonitorLoop(couch, settings, sites, app.state.events, counter, app.state.metrics, records)
            await loop.prepare()
            app.state.loop = loop
            app.state.counts_engine = engine
            app.state.label_scopes = LabelScopes(engine, ttl_s=settings.label_scope_ttl_s)
            app.state.job_databases = list(loop.dbs.values())
            app.state.followed_docs = list(loop.followed.values())
            archivist = Archivist(ArchiveStores(engine, app.state.job_databases, app.state.events.db), sites)
            app.state.archivist = archivist
            peers = app.state.peers = Peers(
                submitter_url=settings.submitter_url,
                request_api_url=settings.request_api_url,
                cycle_runner_url=settings.cycle_runner_url,
                secret=settings.identity_secret,
                timeout_s=settings.peer_timeout_s,
            )
            workers = Workers()
            # The feeds keep the counts even on an API-only replica; the cycle drives job state.
            for follower in loop.followers():
                workers.start(f"changes-{follower.db.name}", follower.run(workers.stop))
            if settings.lookahead_s:
                for lookahead in loop.lookaheads():
                    workers.start(f"lookahead-{lookahead.name}", lookahead.follow(workers.stop, settings.lookahead_s))
            if settings.run_loop:
                workers.start("monitor-cycle", loop.run(workers.stop))
                submitted = event_follower(
                    app.state.events.db,
                    f"{loop.consumer}-submitted",
                    lambda event, _seq: loop.take_submitted(
                        str((event.data or {}).get("database")), list((event.data or {}).get("job_ids") or [])
                    ),
                    types=["jobs.submitted"],
                    start="now",
                    longpoll_s=settings.changes_longpoll_s,
                    checkpoints=InMemoryCheckpoint(),  # a short cut: the job feed brings the same jobs anyway
                    settle_s=SUBMITTED_SETTLE_S,
                )
                workers.start("jobs-submitted", submitted.run(workers.stop))
            if runs_maintenance(settings):
                maintenance = Maintenance.from_settings(app.state.job_databases, settings, app.state.metrics)
                workers.start("maintenance", maintenance.run(workers.stop, settings.maintenance_s))
            try:
                yield
            finally:
                await archivist.aclose()
                await peers.aclose()
                await workers.aclose()
                await sites.aclose()

    app = create_service_app(
        name=NAME,
        title="prodflow monitor",
        description="Follows job documents, drives job state, registers outputs, serves status and the grabber.",
        settings=settings,
        lifespan=lifespan,
        routers=[
            jobs.router,
            labels.router,
            archive.router,
            crates.router,
            grab.router,
            provenance.router,
            metrics.router,
        ],
    )
    app.state.metrics = MonitorMetrics()
    return app
