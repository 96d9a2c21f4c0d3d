"""Which service the gateway sends a path to."""

from __future__ import annotations

import pytest
from prodflow_gateway.app import create_app
from prodflow_gateway.routes.proxy import ServicePaths
from prodflow_gateway.routing import service_for
from prodflow_gateway.settings import GatewaySettings
from starlette.routing import Match


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
    ("method", "path", "match"),
    [
        ("GET", "/api/jobs", Match.FULL),
        ("PATCH", "/api/requests/r-1", Match.FULL),  # every method: the service's 405 names its own
        ("GET", "/api/auth/whoami", Match.NONE),  # the gateway's own routes, after it
        ("GET", "/api/events", Match.NONE),
        ("GET", "/api/nowhere", Match.NONE),  # to the catch-all's 404
    ],
)
def test_the_route_matched_first_takes_only_paths_a_service_owns(method: str, path: str, match: Match) -> None:
    app = create_app(GatewaySettings(log_json=False))
    first = app.router.routes[0]
    assert isinstance(first, ServicePaths)
    assert first.matches({"type": "http", "method": method, "path": path})[0] == match
