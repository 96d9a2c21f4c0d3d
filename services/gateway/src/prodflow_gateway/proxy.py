"""Forwarding a call to a service: streaming both ways, signed identity, 502/504 as problems."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
from fastapi import Request
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.logs import REQUEST_ID_HEADER, request_id
from prodflow_core.problems import Problem
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse
from yarl import URL

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
        "x-request-id",
    }
)


_DROP_REQUEST_RAW = frozenset(name.encode() for name in _DROP_REQUEST)
_DROP_RESPONSE_RAW = frozenset(name.encode() for name in _DROP_RESPONSE)


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


def _forward_headers(request: Request, identity_header: str) -> list[tuple[str, str]]:
    raw = request.headers.raw
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw if k.lower() not in _DROP_REQUEST_RAW]
    client = request.client.host if request.client else ""
    headers += [
        (IDENTITY_HEADER, identity_header),
        (REQUEST_ID_HEADER, request_id.get() or ""),
        ("X-Forwarded-For", client),
        ("X-Forwarded-Proto", request.scope.get("scheme", "http")),
        ("X-Forwarded-Host", request.headers.get("host", "")),
    ]
    return headers


def _upstream_url(base_url: str, request: Request) -> URL:
    """``base_url`` with the path and query as the client sent them, still percent-encoded.

    Rebuilt from the decoded path, a ``%15`` in a name became a control character (a 500); taken as encoded,
    the URL is sent as the client wrote it.
    """
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    query: bytes = request.scope.get("query_string", b"")
    try:
        text = base_url + raw.decode("ascii") + ("?" + query.decode("ascii") if query else "")
        if any(c <= " " or c == "\x7f" for c in text):
            raise ValueError(text)
        return URL(text, encoded=True)
    except ValueError as exc:
        raise Problem(400, "Bad request", "the request path is not a valid URL path", kind="bad-request") from exc


BUFFERED_MAX = 1 << 20
"""Answers of a declared length up to this are read whole and sent in one piece; the rest are streamed."""


def _upstream_failed(service: str, exc: BaseException) -> Problem:
    if isinstance(exc, TimeoutError):
        return Problem(
            504, "Gateway timeout", f"{service} did not answer in time", kind="gateway-timeout", service=service
        )
    return Problem(
        502, "Bad gateway", f"{service} is unreachable: {exc.__class__.__name__}", kind="bad-gateway", service=service
    )


async def forward(
    request: Request,
    *,
    http: aiohttp.ClientSession,
    base_url: str,
    service: str,
    identity_header: str,
    max_body: int,
) -> Response:
    """Send ``request`` to ``base_url`` (no trailing slash) with the same path and query; relay the answer."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise _too_large(max_body)
    has_body = request.method not in {"GET", "HEAD", "OPTIONS", "DELETE"} or declared not in (None, "0")
    try:
        response = await http.request(
            request.method,
            _upstream_url(base_url, request),
            headers=_forward_headers(request, identity_header),
            data=_limited_body(request, max_body) if has_body else None,
            allow_redirects=False,
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        if isinstance(exc.__cause__, Problem):
            raise exc.__cause__ from None  # the body went past the limit while it was being sent (aiohttp wraps it)
        raise _upstream_failed(service, exc) from exc
    if request.method == "HEAD" or (response.content_length is not None and response.content_length <= BUFFERED_MAX):
        return await _whole(response, service)
    return _streamed(response)


async def _whole(response: aiohttp.ClientResponse, service: str) -> Response:
    """The answer read whole: one message to the client, and no task watching for its disconnect (a streamed
    answer needs one per call, and the release of the connection ran in a worker thread)."""
    try:
        body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _upstream_failed(service, exc) from exc
    finally:
        response.release()
    whole = Response(body, status_code=response.status)
    # As the service sent them, Content-Length included (for HEAD it is the length a GET would have).
    whole.raw_headers = [(k, v) for k, v in response.raw_headers if k.lower() not in _DROP_RESPONSE_RAW]
    return whole


def _streamed(response: aiohttp.ClientResponse) -> StreamingResponse:
    async def release() -> None:
        response.release()

    streamed = StreamingResponse(_relay(response), status_code=response.status, background=BackgroundTask(release))
    # As the service sent them: with its Content-Length, a client can tell an answer cut short by the service.
    streamed.raw_headers = [(k, v) for k, v in response.raw_headers if k.lower() not in _DROP_RESPONSE_RAW]
    return streamed


async def _relay(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError):
        return  # the service went away mid-answer: end the stream; the client sees a short body
