"""The OpenAPI document the gateway merges: every route present, problem responses declared."""

from __future__ import annotations

from pathlib import Path

from prodflow_request_api.app import create_app
from prodflow_request_api.settings import RequestApiSettings


def test_openapi_lists_every_route(tmp_path: Path) -> None:
    spec = create_app(RequestApiSettings(data_dir=tmp_path, log_json=False)).openapi()
    paths = spec["paths"]
    assert set(paths) >= {
        "/api/requests",
        "/api/requests/preview",
        "/api/requests/{request_id}",
        "/api/requests/{request_id}/approve",
        "/api/requests/{request_id}/jobs.json",
        "/api/catalog/{experiment}/modules/{module}",
        "/api/catalog/{experiment}/runs",
        "/api/notifications/me",
        "/api/notifications/experiments/{experiment}",
    }
    approve = paths["/api/requests/{request_id}/approve"]["post"]
    assert {"403", "409", "422"} <= set(approve["responses"])
    assert "application/problem+json" in approve["responses"]["409"]["content"]
    assert "RequestForm" in spec["components"]["schemas"] and "ModuleEntry" in spec["components"]["schemas"]
    assert "NotificationsIn" in spec["components"]["schemas"] and "ListsOut" in spec["components"]["schemas"]
