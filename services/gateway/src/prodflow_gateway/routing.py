"""Which service answers which public path."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Route:
    """Paths matching ``pattern`` (anchored at the start) go to ``service``."""

    pattern: re.Pattern[str]
    service: str


def _route(prefix: str, service: str) -> Route:
    return Route(re.compile(prefix + r"(?:/|$)"), service)


# Ordered: the first match wins, so the specific label route of the submitter precedes the monitor's labels.
ROUTES: tuple[Route, ...] = (
    _route(r"/api/requests", "request-api"),
    _route(r"/api/catalog", "request-api"),
    _route(r"/api/notifications", "request-api"),
    _route(r"/api/campaigns", "submitter"),
    _route(r"/api/sites", "submitter"),
    Route(re.compile(r"/api/labels/[^/]+/exactly$"), "submitter"),
    _route(r"/api/jobs", "monitor"),
    _route(r"/api/labels", "monitor"),
    _route(r"/api/grab", "monitor"),
    _route(r"/api/provenance", "monitor"),
    _route(r"/api/cycles", "cycle-runner"),
    _route(r"/api/webhooks", "notifier"),
)

SERVICES: tuple[str, ...] = ("request-api", "submitter", "monitor", "cycle-runner", "notifier")


def service_for(path: str) -> str | None:
    """The service that owns ``path``, or ``None``."""
    for route in ROUTES:
        if route.pattern.match(path):
            return route.service
    return None
