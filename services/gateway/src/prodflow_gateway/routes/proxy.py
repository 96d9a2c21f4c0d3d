"""``/api/...``: every path a service owns, forwarded with the caller's signed identity.

The route takes every method: a method the service's path lacks (``OPTIONS``, ``TRACE``, ``PUT`` on a list...)
reaches the service, whose 405 names the path's own methods in ``Allow``. A path no service owns but a route
of the gateway does (``PUT /api/auth/whoami``) gets the gateway's 405 with that route's methods.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from prodflow_core.http_edges import allowed_methods
from prodflow_core.problems import Problem, problem_response
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from prodflow_gateway.auth import authenticate, check_access
from prodflow_gateway.proxy import forward
from prodflow_gateway.routing import service_for
from prodflow_gateway.upstreams import Upstreams

router = APIRouter()


async def to_service(request: Request) -> Response:
    """Route by path prefix (see ``routing.ROUTES``); reads need ``reader``, writes ``requester``.

    :class:`ServiceCalls` calls it for every path a service owns; the catch-all route below for the rest (404).
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


class ServiceCalls:
    """Every call to a path a service owns (``routing.service_for``), whatever its method, to :func:`to_service`.

    The innermost of the app's middlewares (:func:`answer_service_paths_first`): the request id, the security
    headers, the audit log and CORS wrap a proxied call as any other, but it skips routing and FastAPI's request
    and exception layers: 0.05 of the gateway's 0.41 ms of CPU per call (``bench/bench_gateway.py``). No gateway
    route has such a path, so the answer is the same. Problems are answered as the app's handler answers them;
    other errors go on to the server-error handler, as from a route. Paths no service owns go on to the gateway's
    routes, then the catch-all above.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or service_for(scope["path"]) is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await to_service(Request(scope, receive))
        except Problem as problem:
            response = problem_response(problem, scope["path"])
        await response(scope, receive, send)


def answer_service_paths_first(app: FastAPI) -> None:
    """Answer the paths services own before routing (see :class:`ServiceCalls`). Call it after the app's other
    middlewares are added; those added later wrap it too."""
    app.user_middleware.append(Middleware(ServiceCalls))  # the list's last entry is the innermost


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
