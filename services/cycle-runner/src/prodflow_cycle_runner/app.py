"""The cycle-runner app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from prodflow_core.service import couch_resources, create_service_app
from prodflow_cycle_runner.settings import CycleRunnerSettings

NAME = "cycle-runner"


def create_app(settings: CycleRunnerSettings | None = None) -> FastAPI:
    """Build the cycle-runner app; ``uvicorn prodflow_cycle_runner.app:create_app --factory`` serves it."""
    settings = settings or CycleRunnerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with couch_resources(app, settings):
            yield

    return create_service_app(
        name=NAME,
        title="prodflow cycle-runner",
        description="LEGEND production cycles: tree, config.json, software, Snakemake runs, reprocessing.",
        settings=settings,
        lifespan=lifespan,
        routers=[],
    )
