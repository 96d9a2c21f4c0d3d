"""Forwarding a call to a service: streaming both ways, signed identity, 502/504 as problems."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import Request
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.logs import REQUEST_ID_HEADER, request_id
from prodflow_core.problems import Problem
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

# Hop-by-hop headers (RFC 9110 §7.6.1) plus what the gateway replaces: credentials never reach a service.
_DROP_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",
        "cookie",
        IDENTITY_HEADER.lower(),
        REQUEST_ID_HEADER.lower(),
    }
)
_DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "x-request-id",
    }
)


def _too_large(limit: int) -> Problem:
    return Problem(413, "Request entity too large", f"the body exceeds {limit} bytes", kind="too-large")


async def _limited_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise _too_large(limit)
        yield chunk


def _forward_headers(request: Request, identity: Identity, secret: str, ttl_s: int) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST]
    client = request.client.host if request.client else ""
    headers += [
        (IDENTITY_HEADER, sign_identity(identity, secret, ttl_s)),
        (REQUEST_ID_HEADER, request_id.get() or ""),
        ("X-Forwarded-For", client),
        ("X-Forwarded-Proto", request.url.scheme),
        ("X-Forwarded-Host", request.headers.get("host", "")),
    ]
    return headers


def _upstream_url(base_url: str, request: Request) -> httpx.URL:
    """``base_url`` with the path as the client sent it, still percent-encoded.

    Rebuilt from the decoded path, a ``%15`` in a name became a control character httpx refuses (a 500).
    """
    raw = request.scope.get("raw_path") or request.url.path.encode()
    try:
        base = httpx.URL(base_url)
        return base.copy_with(raw_path=base.raw_path.rstrip(b"/") + raw)
    except (httpx.InvalidURL, UnicodeDecodeError) as exc:
        raise Problem(400, "Bad request", "the request path is not a valid URL path", kind="bad-request") from exc


async def forward(
    request: Request,
    *,
    http: httpx.AsyncClient,
    base_url: str,
    service: str,
    identity: Identity,
    secret: str,
    ttl_s: int,
    max_body: int,
) -> StreamingResponse:
    """Send ``request`` to ``base_url`` with the same path and query and stream the answer back."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body)
    has_body = request.method not in {"GET", "HEAD", "OPTIONS", "DELETE"} or declared not in (None, "0")
    upstream = http.build_request(
        request.method,
        _upstream_url(base_url, request),
        params=request.url.query,
        headers=_forward_headers(request, identity, secret, ttl_s),
        content=_limited_body(request, max_body) if has_body else None,
    )
    try:
        response = await http.send(upstream, stream=True)
    except httpx.TimeoutException as exc:
        raise Problem(
            504, "Gateway timeout", f"{service} did not answer in time", kind="gateway-timeout", service=service
        ) from exc
    except httpx.TransportError as exc:
        raise Problem(
            502,
            "Bad gateway",
            f"{service} is unreachable: {exc.__class__.__name__}",
            kind="bad-gateway",
            service=service,
        ) from exc
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_RESPONSE}
    return StreamingResponse(
        _relay(response),
        status_code=response.status_code,
        headers=headers,
        background=BackgroundTask(response.aclose),
    )


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the service went away mid-answer: end the stream; the client sees a short body
