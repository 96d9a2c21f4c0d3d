"""The gateway app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from prodflow_core.service import Workers, couch_resources, create_service_app
from prodflow_core.sql import sql_database

from prodflow_gateway import models  # noqa: F401  (registers the tables)
from prodflow_gateway.audit import AuditMiddleware
from prodflow_gateway.audit_log import AuditLog
from prodflow_gateway.dashboard_files import DashboardFiles
from prodflow_gateway.events import EventWindow
from prodflow_gateway.failures import AuthFailures
from prodflow_gateway.last_used import LastUsed
from prodflow_gateway.openapi import MergedOpenAPI
from prodflow_gateway.proxy import IdentityHeaders
from prodflow_gateway.routes import audit, events, health, proxy, tokens
from prodflow_gateway.settings import GatewaySettings
from prodflow_gateway.tokens import TokenLookup, ensure_first_admin
from prodflow_gateway.upstreams import Upstreams

NAME = "gateway"
DASHBOARD = Path(__file__).parent / "dashboard"


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway; ``uvicorn prodflow_gateway.app:create_app --factory`` serves it."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        timeout = httpx.Timeout(settings.proxy_timeout_s, connect=settings.connect_timeout_s)
        workers = Workers()
        upstreams = Upstreams(
            settings.service_urls(),
            timeout_s=settings.proxy_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            connections=settings.upstream_connections,
        )
        async with (
            sql_database(app, settings.sql_url()),
            httpx.AsyncClient(timeout=timeout) as http,  # health probes and OpenAPI documents
            couch_resources(app, settings) as couch,
        ):
            sessions = app.state.sessions
            last_used = LastUsed(sessions, settings.token_last_used_every_s)
            app.state.tokens = TokenLookup(sessions, settings.token_cache_s, last_used)
            app.state.auth_failures = AuthFailures(settings.auth_failure_limit, settings.auth_failure_window_s)
            app.state.audit = audit_log = AuditLog(sessions)
            bootstrap = settings.bootstrap_token.get_secret_value() if settings.bootstrap_token else None
            await ensure_first_admin(sessions, settings.admin_token_path(), bootstrap)
            app.state.http = http
            app.state.upstreams = upstreams
            app.state.identity_headers = IdentityHeaders(settings.identity_secret, settings.identity_ttl_s)
            app.state.events_db = couch.db(settings.events_db)
            app.state.event_window = window = EventWindow(settings.sse_window, settings.sse_window_bytes)
            app.state.openapi = MergedOpenAPI(http, settings.service_urls())
            workers.start(
                "event-window", window.follow(app.state.events_db, workers.stop, settle_s=settings.sse_settle_s)
            )
            audit_log.start()
            workers.start("token-last-used", last_used.follow(workers.stop))
            try:
                yield
            finally:
                await workers.aclose(grace_s=0.0)  # the followers keep nothing: cancel their waits at once
                await audit_log.aclose()  # the calls answered so far are written before the gateway stops
                await last_used.flush()
                await upstreams.aclose()

    app = create_service_app(
        name=NAME,
        title="prodflow",
        description="Production management for particle-physics experiments: one API for every service.",
        settings=settings,
        lifespan=lifespan,
        routers=[tokens.router, audit.router, events.router, health.router, proxy.router],  # proxy last: catch-all
        serve_docs=False,  # the merged document below replaces the gateway's own
    )
    proxy.answer_service_paths_first(app)
    app.add_middleware(AuditMiddleware)  # outermost: sees the final status of every answer
    app.add_api_route("/openapi.json", _openapi, methods=["GET"], include_in_schema=False)
    app.add_api_route("/docs", _docs, methods=["GET"], include_in_schema=False)
    # Last: the dashboard's static files answer every path no route above claimed ("/" is its index.html).
    app.mount("/", DashboardFiles(directory=DASHBOARD, html=True), name="dashboard")
    if settings.cors_origins:
        _allow_cross_origin(app, settings.cors_origins)
    return app


def _allow_cross_origin(app: FastAPI, origins: list[str]) -> None:
    """Let browser pages of ``origins`` (and no others) call the API with a bearer token.

    No credentials mode: the API takes tokens in ``Authorization``, never cookies, so no browser sends it one
    on its own. Added last, so it answers preflight ``OPTIONS`` before routing and authentication.
    """
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=False,
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Location", "Retry-After", "Allow"],
        max_age=600,
    )


def _own_spec(app: FastAPI) -> dict[str, Any]:
    return get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)


async def _openapi(request: Request) -> JSONResponse:
    return JSONResponse(await request.app.state.openapi.spec(_own_spec(request.app)))


async def _docs(_request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="prodflow API")
