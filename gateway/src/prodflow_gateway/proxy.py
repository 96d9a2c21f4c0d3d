"""Forwarding a call to a service: streaming both ways, signed identity, 502/504 as problems."""

from __future__ import annotations

import time
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


_DROP_REQUEST_RAW = frozenset(name.encode() for name in _DROP_REQUEST)
_DROP_RESPONSE_RAW = frozenset(name.encode() for name in _DROP_RESPONSE)
_IDENTITY_RAW = IDENTITY_HEADER.lower().encode()
_REQUEST_ID_RAW = REQUEST_ID_HEADER.lower().encode()


def _too_large(limit: int) -> Problem:
    return Problem(413, "Request entity too large", f"the body exceeds {limit} bytes", kind="too-large")


async def _limited_body(request: Request, limit: int) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise _too_large(limit)
        yield chunk


class IdentityHeaders:
    """Signed identity headers, each reused for half its lifetime: signing is a JSON dump and an HMAC per call.

    A reused header reaches a service with at least ``ttl_s / 2`` seconds left. It carries no more than the
    identity the gateway has just checked the caller's token for: revocation is enforced at that check.
    """

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self._ttl_s = ttl_s
        self._signed: dict[Identity, tuple[float, str]] = {}

    def of(self, identity: Identity) -> str:
        """A valid header for ``identity``."""
        now = time.monotonic()
        hit = self._signed.get(identity)
        if hit is not None and hit[0] > now:
            return hit[1]
        header = sign_identity(identity, self._secret, self._ttl_s)
        if len(self._signed) > 10_000:
            self._signed.clear()
        self._signed[identity] = (now + self._ttl_s / 2, header)
        return header


def _forward_headers(request: Request, identity_header: str) -> list[tuple[bytes, bytes]]:
    headers = [(k, v) for k, v in request.headers.raw if k.lower() not in _DROP_REQUEST_RAW]
    client = request.client.host if request.client else ""
    headers += [
        (_IDENTITY_RAW, identity_header.encode()),
        (_REQUEST_ID_RAW, (request_id.get() or "").encode()),
        (b"x-forwarded-for", client.encode()),
        (b"x-forwarded-proto", request.url.scheme.encode()),
        (b"x-forwarded-host", request.headers.get("host", "").encode("latin-1")),
    ]
    return headers


def _upstream_url(base_url: str, request: Request) -> str:
    """``base_url`` with the path and query as the client sent them, still percent-encoded.

    Rebuilt from the decoded path, a ``%15`` in a name became a control character httpx refuses (a 500).
    """
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    try:
        return base_url + raw.decode("ascii") + ("?" + query.decode("ascii") if query else "")
    except UnicodeDecodeError as exc:
        raise Problem(400, "Bad request", "the request path is not a valid URL path", kind="bad-request") from exc


async def forward(
    request: Request,
    *,
    http: httpx.AsyncClient,
    base_url: str,
    service: str,
    identity_header: str,
    max_body: int,
) -> StreamingResponse:
    """Send ``request`` to ``base_url`` (no trailing slash) with the same path and query; stream the answer back."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body)
    has_body = request.method not in {"GET", "HEAD", "OPTIONS", "DELETE"} or declared not in (None, "0")
    try:
        upstream = http.build_request(
            request.method,
            _upstream_url(base_url, request),
            headers=_forward_headers(request, identity_header),
            content=_limited_body(request, max_body) if has_body else None,
        )
    except httpx.InvalidURL as exc:
        raise Problem(400, "Bad request", "the request path is not a valid URL path", kind="bad-request") from exc
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
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _DROP_RESPONSE_RAW]
    streamed = StreamingResponse(
        _relay(response), status_code=response.status_code, background=BackgroundTask(response.aclose)
    )
    streamed.raw_headers = headers  # as the service sent them; the body is streamed, so no content-length
    return streamed


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.HTTPError:
        return  # the service went away mid-answer: end the stream; the client sees a short body
