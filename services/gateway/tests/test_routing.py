"""Which service the gateway sends a path to."""

from __future__ import annotations

import pytest
from prodflow_gateway.failures import AuthFailures
from prodflow_gateway.routes.proxy import ServiceCalls
from prodflow_gateway.routing import service_for
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/labels", "monitor"),
        ("/api/labels/2026-12_Archive_v1/summary", "monitor"),
        ("/api/labels/2026-12_Archive_v1/archive", "monitor"),  # archival: POST starts it, GET shows its state
        ("/api/labels/2026-12_Archive_v1/restore", "monitor"),
        ("/api/labels/2026-12_Archive_v1/exactly", "submitter"),
        ("/api/grab/2026-12_Archive_v1/exactly", "monitor"),
        ("/api/labelsx", None),
    ],
)
def test_label_paths_go_to_their_service(path: str, service: str | None) -> None:
    assert service_for(path) == service


@pytest.mark.parametrize(
    ("method", "path", "to_service"),
    [
        ("GET", "/api/jobs", True),
        ("PATCH", "/api/requests/r-1", True),  # every method: the service's 405 names its own
        ("GET", "/api/auth/whoami", False),  # the gateway's own routes, after it
        ("GET", "/api/events", False),
        ("GET", "/api/nowhere", False),  # to the catch-all's 404
        ("GET", "/", False),
    ],
)
def test_service_paths_are_answered_before_routing(method: str, path: str, to_service: bool) -> None:
    routed: list[str] = []

    async def routes(scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["path"])
        await PlainTextResponse("routed")(scope, receive, send)

    app = Starlette(middleware=[Middleware(ServiceCalls)], routes=[Mount("/", routes)])
    app.state.auth_failures = AuthFailures(limit=10, window_s=60.0)
    answer = TestClient(app).request(method, path)  # no token: a service path is refused before any upstream
    assert routed == ([] if to_service else [path])
    assert answer.status_code == (401 if to_service else 200)
    if to_service:
        assert answer.headers["content-type"] == "application/problem+json"
