"""The submitter app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from prodflow_core.service import couch_resources, create_service_app
from prodflow_submitter.settings import SubmitterSettings

NAME = "submitter"


def create_app(settings: SubmitterSettings | None = None) -> FastAPI:
    """Build the submitter app; ``uvicorn prodflow_submitter.app:create_app --factory`` serves it."""
    settings = settings or SubmitterSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with couch_resources(app, settings):
            yield

    return create_service_app(
        name=NAME,
        title="prodflow submitter",
        description="Campaigns from jobs.json: job documents, .exactly, sites and compute backends.",
        settings=settings,
        lifespan=lifespan,
        routers=[],
    )
