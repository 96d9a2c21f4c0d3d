"""Forwarding a call to a service: streaming both ways, signed identity, 502/504 as problems."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import Request
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.logs import REQUEST_ID_HEADER, request_id
from prodflow_core.problems import Problem
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from prodflow_gateway.upstream_http import Body, UpstreamAnswer, UpstreamError, UpstreamPool

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
        "expect",  # the gateway answers 100-continue itself and sends the body at once
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


def _forward_headers(request: Request, identity_header: str) -> list[tuple[bytes, bytes]]:
    scope = request.scope
    raw: list[tuple[bytes, bytes]] = scope["headers"]  # ASGI header names are lower case
    headers = [(name, value) for name, value in raw if name not in _DROP_REQUEST_RAW]
    host = next((value for name, value in raw if name == b"host"), b"")
    client = scope.get("client")
    headers += [
        (_IDENTITY, identity_header.encode("latin-1")),
        (_REQUEST_ID, (request_id.get() or "").encode("latin-1")),
        (b"x-forwarded-for", client[0].encode("latin-1") if client else b""),
        (b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")),
        (b"x-forwarded-host", host),
    ]
    return headers


_IDENTITY = IDENTITY_HEADER.lower().encode()
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_NOT_IN_A_TARGET = bytes(range(0x21)) + bytes(range(0x7F, 0x100))


def _upstream_target(request: Request) -> bytes:
    """The path and query as the client sent them, still percent-encoded.

    Rebuilt from the decoded path, a ``%15`` in a name became a control character (a 500); taken as encoded,
    the target is sent as the client wrote it.
    """
    raw: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
    query: bytes = request.scope.get("query_string", b"")
    target = raw + b"?" + query if query else raw
    if len(target.translate(None, _NOT_IN_A_TARGET)) != len(target):
        raise Problem(400, "Bad request", "the request path is not a valid URL path", kind="bad-request")
    return target


BUFFERED_MAX = 1 << 20
"""Answers of a declared length up to this are read whole and sent in one piece; the rest are streamed."""

WHOLE_BODY_MAX = 1 << 16
"""Request bodies of a declared length up to this are read whole and sent with the call's head in one write."""


def _upstream_failed(service: str, exc: BaseException) -> Problem:
    if isinstance(exc, TimeoutError):
        return Problem(
            504, "Gateway timeout", f"{service} did not answer in time", kind="gateway-timeout", service=service
        )
    return Problem(502, "Bad gateway", f"{service} is unreachable: {exc}", kind="bad-gateway", service=service)


async def forward(
    request: Request,
    *,
    upstream: UpstreamPool,
    service: str,
    identity_header: str,
    max_body: int,
) -> Response:
    """Send ``request`` to ``upstream`` with the same method, path and query; relay the answer."""
    declared = request.headers.get("content-length")
    length = int(declared) if declared is not None and declared.isdigit() else None
    if length is not None and length > max_body:
        raise _too_large(max_body)
    target = _upstream_target(request)
    headers = _forward_headers(request, identity_header)
    body: Body = None
    if request.method not in {"GET", "HEAD", "OPTIONS", "DELETE"} or declared not in (None, "0"):
        if length is not None and length <= WHOLE_BODY_MAX:
            body = await request.body()
        else:
            body = _limited_body(request, max_body)
            if length is not None:
                headers.append((b"content-length", str(length).encode("ascii")))
    try:
        answer = await upstream.send(request.method, target, headers, body)
    except (UpstreamError, TimeoutError) as exc:
        raise _upstream_failed(service, exc) from exc
    if request.method == "HEAD" or (answer.content_length is not None and answer.content_length <= BUFFERED_MAX):
        return await _whole(answer, service)
    return _streamed(answer)


async def _whole(answer: UpstreamAnswer, service: str) -> Response:
    """The answer read whole: one message to the client, and no task watching for its disconnect (a streamed
    answer needs one per call)."""
    try:
        body = await answer.read()
    except (UpstreamError, TimeoutError) as exc:
        raise _upstream_failed(service, exc) from exc
    finally:
        answer.release()
    whole = Response(body, status_code=answer.status)
    # As the service sent them, Content-Length included (for HEAD it is the length a GET would have).
    whole.raw_headers = [(k, v) for k, v in answer.headers if k.lower() not in _DROP_RESPONSE_RAW]
    return whole


def _streamed(answer: UpstreamAnswer) -> StreamingResponse:
    async def release() -> None:
        answer.release()

    streamed = StreamingResponse(_relay(answer), status_code=answer.status, background=BackgroundTask(release))
    # As the service sent them: with its Content-Length, a client can tell an answer cut short by the service.
    streamed.raw_headers = [(k, v) for k, v in answer.headers if k.lower() not in _DROP_RESPONSE_RAW]
    return streamed


async def _relay(answer: UpstreamAnswer) -> AsyncIterator[bytes]:
    try:
        async for chunk in answer.chunks():
            yield chunk
    except (UpstreamError, TimeoutError):
        return  # the service went away mid-answer: end the stream; the client sees a short body
    finally:
        answer.release()  # also when the client went away and the stream was dropped (the background task is not run)
