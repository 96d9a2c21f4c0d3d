"""``/api/...``: every path a service owns, forwarded with the caller's signed identity."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prodflow_core.problems import Problem
from starlette.responses import StreamingResponse

from prodflow_gateway.auth import Caller, check_access
from prodflow_gateway.proxy import forward
from prodflow_gateway.routing import service_for
from prodflow_gateway.upstreams import Upstreams

router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/api/{path:path}", methods=METHODS, include_in_schema=False)
async def to_service(path: str, request: Request, identity: Caller) -> StreamingResponse:
    """Route by path prefix (see ``routing.ROUTES``); reads need ``reader``, writes ``requester``."""
    service = service_for(request.url.path)
    if service is None:
        raise Problem(404, "Not found", f"no service answers {request.url.path}", kind="not-found")
    check_access(identity, request.method, request.query_params.get("experiment"))
    state = request.app.state
    upstreams: Upstreams = state.upstreams
    return await forward(
        request,
        http=upstreams.client(service),
        base_url=upstreams.base_urls[service],
        service=service,
        identity_header=state.identity_headers.of(identity),
        max_body=state.settings.max_body_bytes,
    )
