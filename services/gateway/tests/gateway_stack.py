"""A gateway in front of a real echo service, both served by uvicorn on loopback, and a real CouchDB-API server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from counting_proxy import CountingProxy, counting_proxy
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from prodflow_core.couch.server import free_port
from prodflow_core.identity import Identity, current_identity
from prodflow_core.service import create_service_app
from prodflow_core.settings import ServiceSettings
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app
from prodflow_gateway.settings import GatewaySettings

ADMIN_TOKEN = "pf_test-admin-token"
CORS_ORIGIN = "https://dashboard.example.org"


def echo_app(settings: ServiceSettings) -> Any:
    """A stand-in service (mounted where request-api lives) that shows what the gateway forwarded."""
    router = APIRouter()

    @router.api_route("/api/requests/echo", methods=["GET", "POST"])
    async def echo(request: Request, identity: Annotated[Identity, Depends(current_identity)]) -> dict[str, Any]:
        body = await request.body()
        return {
            "user": identity.user,
            "roles": sorted(identity.roles),
            "experiments": sorted(identity.experiments),
            "request_id": request.headers.get("x-request-id"),
            "authorization": request.headers.get("authorization"),
            "body_bytes": len(body),
            "query": str(request.url.query),
        }

    @router.get("/api/requests/echo/{name}")
    async def echo_name(name: str, request: Request) -> dict[str, Any]:
        return {"name": name, "raw_path": request.scope["raw_path"].decode(), "query": str(request.url.query)}

    @router.api_route("/api/requests/bytes/{size}", methods=["GET", "HEAD"])
    async def some_bytes(size: int, chunked: bool = False) -> Response:
        body = bytes(i % 251 for i in range(size))
        if not chunked:
            return Response(body, media_type="application/octet-stream")

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, size, 65536):
                yield body[start : start + 65536]

        return StreamingResponse(pieces(), media_type="application/octet-stream")

    @asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        yield

    return create_service_app(name="echo", title="echo", settings=settings, lifespan=lifespan, routers=[router])


@dataclass
class Stack:
    url: str
    settings: GatewaySettings
    couch_url: str
    """The CouchDB-API server itself (``settings.couchdb_url`` may be a counting proxy in front of it)."""
    proxy: CountingProxy | None = None


@pytest.fixture(scope="module")
def stack(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _stack(couch_url, tmp_path_factory) as made:
        yield made


@pytest.fixture
def counted_stack(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway of its own whose CouchDB requests go through a counting proxy; its SSE window holds 5 changes."""
    with counting_proxy(couch_url) as proxy, _stack(couch_url, tmp_path_factory, proxy, sse_window=5) as made:
        yield made


@pytest.fixture(scope="module")
def lifecycle_stack(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway of its own that writes ``last_used_at`` every 0.2 s."""
    with _stack(couch_url, tmp_path_factory, token_last_used_every_s=0.2) as made:
        yield made


@pytest.fixture
def strict_stack(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway of its own that refuses an address after 3 failed authentications within 2 s."""
    with _stack(couch_url, tmp_path_factory, auth_failure_limit=3, auth_failure_window_s=2.0) as made:
        yield made


@pytest.fixture(scope="module")
def cors_stack(couch_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway of its own that lets pages of ``CORS_ORIGIN`` call it."""
    with _stack(couch_url, tmp_path_factory, cors_origins=[CORS_ORIGIN]) as made:
        yield made


@contextmanager
def _stack(
    couch_url: str, tmp_path_factory: pytest.TempPathFactory, proxy: CountingProxy | None = None, **extra: Any
) -> Iterator[Stack]:
    data: Path = tmp_path_factory.mktemp("gateway")
    events_db = f"events-{uuid.uuid4().hex[:8]}"
    service_settings = ServiceSettings(couchdb_url=couch_url, data_dir=data, log_json=False, events_db=events_db)
    with serving(echo_app(service_settings)) as echo_url:
        settings = GatewaySettings(
            couchdb_url=proxy.url if proxy else couch_url,
            data_dir=data,
            log_json=False,
            events_db=events_db,
            bootstrap_token=ADMIN_TOKEN,
            request_api_url=echo_url,
            submitter_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there: "down"
            monitor_url=f"http://127.0.0.1:{free_port()}",
            cycle_runner_url=f"http://127.0.0.1:{free_port()}",
            max_body_bytes=1024 * 1024,
            sse_heartbeat_s=0.5,
            **extra,
        )
        with serving(create_app(settings)) as url:
            yield Stack(url=url, settings=settings, couch_url=couch_url, proxy=proxy)
