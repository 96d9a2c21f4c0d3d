"""Which service the gateway sends a path to."""

from __future__ import annotations

import pytest
from prodflow_gateway.routing import service_for


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
