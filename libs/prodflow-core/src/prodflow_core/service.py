"""The FastAPI factory every service uses: problems, request ids, security headers, logging, ``/healthz``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from prodflow_core import __version__
from prodflow_core.collector import settle_after_startup
from prodflow_core.couch.client import CouchClient
from prodflow_core.credentials import redact_url
from prodflow_core.events import EventPublisher
from prodflow_core.http_edges import HeadersMiddleware
from prodflow_core.logs import RequestIdMiddleware, configure_logging
from prodflow_core.problems import PROBLEM_RESPONSES, install_problem_handlers
from prodflow_core.settings import DEFAULT_IDENTITY_SECRET, ServiceSettings

HealthCheck = Callable[[], Awaitable[Any]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    name: str,
    title: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    routers: Sequence[APIRouter],
    description: str = "",
    serve_docs: bool = True,
) -> FastAPI:
    """A service app: its routers, problem+json errors, request-id middleware, JSON logs and ``/healthz``.

    The lifespan registers health checks in ``app.state.health_checks`` (name → async callable that raises
    when the dependency is down). ``serve_docs=False`` leaves ``/openapi.json`` and ``/docs`` to the caller.
    """
    configure_logging(name, settings.log_level, settings.log_json)
    if settings.identity_secret == DEFAULT_IDENTITY_SECRET:
        logging.getLogger(f"prodflow.{name}").warning(
            "PRODFLOW_IDENTITY_SECRET is the built-in development value: whoever reaches this service can sign any "
            "identity; set a random secret shared by the gateway and the services (prodflow up makes one)"
        )
    docs: dict[str, Any] = {} if serve_docs else {"openapi_url": None, "docs_url": None, "redoc_url": None}
    app = FastAPI(
        title=title,
        version=__version__,
        description=description,
        lifespan=_settled(lifespan),
        responses=PROBLEM_RESPONSES,
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
        **docs,
    )
    app.state.service_name = name
    app.state.settings = settings
    app.state.identity_secret = settings.identity_secret
    app.state.health_checks = {}
    install_problem_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HeadersMiddleware)
    for router in routers:
        app.include_router(router)
    # Added last so that a service's own /healthz route (the gateway's) takes precedence.
    app.add_api_route("/healthz", _healthz, methods=["GET"], include_in_schema=False)
    return app


def _settled(lifespan: Lifespan) -> Lifespan:
    """``lifespan``, then the garbage collector settled (:mod:`prodflow_core.collector`) once the app is built."""

    @asynccontextmanager
    async def started(app: FastAPI) -> AsyncIterator[None]:
        async with lifespan(app):
            settle_after_startup()
            yield

    return started


async def _healthz(request: Request) -> JSONResponse:
    checks: dict[str, HealthCheck] = request.app.state.health_checks
    results: dict[str, str] = {}
    for check_name, check in checks.items():
        try:
            await check()
            results[check_name] = "ok"
        except Exception as exc:
            results[check_name] = f"down: {redact_url(str(exc))}"
    healthy = all(v == "ok" for v in results.values())
    body = {
        "service": request.app.state.service_name,
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "checks": results,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@asynccontextmanager
async def couch_resources(app: FastAPI, settings: ServiceSettings) -> AsyncIterator[CouchClient]:
    """Open the CouchDB client, ensure the event stream exists, and expose both on ``app.state``.

    Sets ``app.state.couch`` and ``app.state.events`` (an :class:`EventPublisher` whose source is
    ``/services/<name>``) and registers the ``couchdb`` health check.
    """
    client = CouchClient(settings.couchdb_url, auth=settings.couchdb_auth())
    try:
        events_db = client.db(settings.events_db)
        await events_db.ensure(shards=1)  # one shard: consumers see events in the order they were stored
        app.state.couch = client
        app.state.events = EventPublisher(events_db, f"/services/{app.state.service_name}")
        app.state.health_checks["couchdb"] = client.info
        yield client
    finally:
        await client.aclose()


class Workers:
    """Long-running background tasks of a service, cancelled and awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in the background until shutdown."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Ask workers to stop, then cancel whatever is still running."""
        self.stop.set()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(self._tasks, timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
