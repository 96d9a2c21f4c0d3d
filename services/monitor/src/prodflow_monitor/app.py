"""The monitor app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from prodflow_core.service import couch_resources, create_service_app
from prodflow_monitor.settings import MonitorSettings

NAME = "monitor"


def create_app(settings: MonitorSettings | None = None) -> FastAPI:
    """Build the monitor app; ``uvicorn prodflow_monitor.app:create_app --factory`` serves it."""
    settings = settings or MonitorSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with couch_resources(app, settings):
            yield

    return create_service_app(
        name=NAME,
        title="prodflow monitor",
        description="Follows job documents, drives job state, registers outputs, serves status and the grabber.",
        settings=settings,
        lifespan=lifespan,
        routers=[],
    )
