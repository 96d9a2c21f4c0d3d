"""The request-api app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from prodflow_core.service import couch_resources, create_service_app
from prodflow_request_api.settings import RequestApiSettings

NAME = "request-api"


def create_app(settings: RequestApiSettings | None = None) -> FastAPI:
    """Build the request-api app; ``uvicorn prodflow_request_api.app:create_app --factory`` serves it."""
    settings = settings or RequestApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with couch_resources(app, settings):
            yield

    return create_service_app(
        name=NAME,
        title="prodflow request-api",
        description="Production requests, approval, jobs.json and the module & run catalog.",
        settings=settings,
        lifespan=lifespan,
        routers=[],
    )
