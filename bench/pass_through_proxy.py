"""The floor of one HTTP hop in Python on these cores, for ``bench_gateway.py``: a pass-through proxy.

Nothing of the gateway (no routing, authentication, identity, audit log, middleware): uvicorn (uvloop, httptools)
serves a bare ASGI app that sends each request to ``PASS_THROUGH_UPSTREAM`` with the caller's headers and relays
the answer back whole. ``PASS_THROUGH_CLIENT`` picks how it talks to the upstream:
- ``aiohttp``: the gateway's own aiohttp session (``prodflow_gateway.upstreams.Upstreams``);
- ``httptools``: keep-alive connections and httptools' response parser, nothing more. No timeouts, no streamed
  bodies, no request bodies, no retries: an instrument that shows what the client costs, not a proxy to run.

Serve: PYTHONPATH=bench python -m uvicorn pass_through_proxy:create_app --factory
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
from prodflow_gateway.upstreams import Upstreams
from yarl import URL

Scope = dict[str, Any]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
_HOP = frozenset({b"host", b"connection", b"content-length", b"transfer-encoding", b"keep-alive"})


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the ``on_*`` methods as it parses an answer."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.done is not None
        self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("upstream closed the connection"))


class _HttptoolsClient:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: list[_Connection] = []

    async def __call__(self, scope: Scope) -> Answer:
        loop = asyncio.get_running_loop()
        conn = self.idle.pop() if self.idle else (await loop.create_connection(_Connection, self.host, self.port))[1]
        query = scope["query_string"]
        head = [scope["method"].encode(), b" ", scope["raw_path"], b"?" + query if query else b"", b" HTTP/1.1\r\n"]
        head.append(b"host: upstream\r\n")
        for name, value in scope["headers"]:
            if name not in _HOP:
                head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        conn.done, conn.headers, conn.body = loop.create_future(), [], []
        assert conn.transport is not None
        conn.transport.write(b"".join(head))
        await conn.done
        self.idle.append(conn)
        return conn.status, conn.headers, b"".join(conn.body)


class _AiohttpClient:
    """The gateway's own upstream session (``prodflow_gateway.upstreams.Upstreams``)."""

    def __init__(self, upstream: str) -> None:
        self.upstreams = Upstreams({"upstream": upstream}, timeout_s=60.0, connect_timeout_s=5.0, connections=100)
        self.base_url = self.upstreams.base_urls["upstream"]

    async def __call__(self, scope: Scope) -> Answer:
        query = scope["query_string"].decode()
        url = URL(self.base_url + scope["raw_path"].decode() + ("?" + query if query else ""), encoded=True)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in _HOP]
        session = self.upstreams.client("upstream")
        response = await session.request(scope["method"], url, headers=headers, allow_redirects=False)
        body = await response.read()
        response.release()
        return response.status, list(response.raw_headers), body


def create_app() -> Callable[[Scope, Any, Any], Awaitable[None]]:
    """The pass-through app for ``PASS_THROUGH_UPSTREAM`` through ``PASS_THROUGH_CLIENT``."""
    upstream = os.environ["PASS_THROUGH_UPSTREAM"]
    kind = os.environ.get("PASS_THROUGH_CLIENT", "aiohttp")
    client = _HttptoolsClient(upstream) if kind == "httptools" else _AiohttpClient(upstream)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        status, headers, body = await client(scope)
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP]
        await send({"type": "http.response.start", "status": status,
                    "headers": [*kept, (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    return app
