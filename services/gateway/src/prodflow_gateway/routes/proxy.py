"""``/api/...``: every path a service owns, forwarded with the caller's signed identity.

The route takes every method: a method the service's path lacks (``OPTIONS``, ``TRACE``, ``PUT`` on a list...)
reaches the service, whose 405 names the path's own methods in ``Allow``. A path no service owns but a route
of the gateway does (``PUT /api/auth/whoami``) gets the gateway's 405 with that route's methods.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from prodflow_core.http_edges import allowed_methods
from prodflow_core.problems import Problem
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from prodflow_gateway.auth import authenticate, check_access
from prodflow_gateway.proxy import forward
from prodflow_gateway.routing import service_for
from prodflow_gateway.upstreams import Upstreams

router = APIRouter()


async def to_service(request: Request) -> Response:
    """Route by path prefix (see ``routing.ROUTES``); reads need ``reader``, writes ``requester``.

    A plain Starlette route (no FastAPI dependency solving): it runs on every proxied call.
    """
    identity = await authenticate(request)  # first: a caller without a token learns nothing of the paths
    path: str = request.scope["path"]  # not request.url: building it was ~8 % of the gateway's CPU per call
    service = service_for(path)
    if service is None:
        raise _not_served(request)
    check_access(identity, request.method, _experiment_asked(request), path)
    state = request.app.state
    upstreams: Upstreams = state.upstreams
    return await forward(
        request,
        upstream=upstreams.client(service),
        service=service,
        identity_header=state.identity_headers.of(identity),
        max_body=state.settings.max_body_bytes,
    )


router.add_route("/api/{path:path}", to_service, include_in_schema=False)
router.routes[-1].methods.clear()  # type: ignore[attr-defined]  # no method list: every method is forwarded


def _experiment_asked(request: Request) -> str | None:
    """The ``experiment`` query parameter, if any. The query is parsed only where it could name one (1.6 µs
    instead of 7.8 µs for a job list's query). ``%`` may spell the name in escapes, so a query with any escape is
    parsed too."""
    query: bytes = request.scope["query_string"]
    if b"experiment" not in query and b"%" not in query:
        return None
    return request.query_params.get("experiment")


class ServicePaths(Route):
    """Every path a service owns (``routing.service_for``), every method, to :func:`to_service`.

    The app puts it before its own routes (:func:`route_service_paths_first`): no gateway route has such a path,
    so the answer is the same, and a proxied call skips matching each gateway route's pattern (~5 % of the
    gateway's CPU per call). Paths no service owns go on to the gateway's routes, then the catch-all above.
    """

    def __init__(self) -> None:
        super().__init__("/api/{path:path}", to_service, include_in_schema=False)
        self.methods = None  # every method is forwarded

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """A full match for an HTTP request to a path a service owns, whatever its method."""
        if scope["type"] == "http" and service_for(scope["path"]) is not None:
            return Match.FULL, {"endpoint": self.endpoint, "path_params": {}}
        return Match.NONE, {}


def route_service_paths_first(app: FastAPI) -> None:
    """Match the paths services own before the gateway's own routes (see :class:`ServicePaths`)."""
    app.router.routes.insert(0, ServicePaths())


def _not_served(request: Request) -> Problem:
    """404, or 405 where a route of the gateway itself has the path (with another method)."""
    allow = allowed_methods(request.app.router.routes, request.scope)
    if allow:
        return Problem(
            405,
            "Method not allowed",
            f"{request.method} is not one of {', '.join(allow)}",
            kind="method-not-allowed",
            headers={"Allow": ", ".join(allow)},
        )
    return Problem(404, "Not found", f"no service answers {request.url.path}", kind="not-found")
