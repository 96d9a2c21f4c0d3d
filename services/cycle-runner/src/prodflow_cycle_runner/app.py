"""The cycle-runner app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prodflow_core.events import BackloggedPublisher
from prodflow_core.service import Workers, couch_resources, create_service_app
from prodflow_core.sql import sql_database

from prodflow_cycle_runner.models import CycleRow, FileRow, RunRow, StepRow
from prodflow_cycle_runner.routes import ROUTERS
from prodflow_cycle_runner.runner import RunQueue
from prodflow_cycle_runner.settings import CycleRunnerSettings

NAME = "cycle-runner"


def create_app(settings: CycleRunnerSettings | None = None) -> FastAPI:
    """Build the cycle-runner app; ``uvicorn prodflow_cycle_runner.app:create_app --factory`` serves it."""
    settings = settings or CycleRunnerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings.root().mkdir(parents=True, exist_ok=True)
        tables = [CycleRow.__table__, RunRow.__table__, StepRow.__table__, FileRow.__table__]  # type: ignore[attr-defined]
        async with sql_database(app, settings.sql_url(), tables), couch_resources(app, settings):
            # Run announcements made while CouchDB is away are stored when it is back, in order.
            events = BackloggedPublisher(app.state.events)
            workers = Workers()
            workers.start("event-backlog", events.run(workers.stop))

            async def publish(short_type: str, subject: str, experiment: str, data: dict[str, Any]) -> None:
                await events.emit(short_type, subject=subject, experiment=experiment or None, data=data)

            app.state.publish = publish
            app.state.queue = RunQueue(app.state.sessions, settings, publish)
            try:
                await app.state.queue.recover()
                yield
            finally:
                await app.state.queue.aclose()
                await workers.aclose()

    return create_service_app(
        name=NAME,
        title="prodflow cycle-runner",
        description="LEGEND production cycles: tree, config.json, software, Snakemake runs, reprocessing.",
        settings=settings,
        lifespan=lifespan,
        routers=ROUTERS,
    )
