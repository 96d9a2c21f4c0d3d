"""The floor of one HTTP hop in Python on these cores, for ``bench_gateway.py``: a pass-through proxy.

Nothing of the gateway (no routing, authentication, identity, audit log, middleware): uvicorn (uvloop, httptools)
serves a bare ASGI app that sends each request to ``PASS_THROUGH_UPSTREAM`` with the caller's headers and relays
the answer back whole. ``PASS_THROUGH_CLIENT`` picks how it talks to the upstream:
- ``gateway``: the gateway's own client (``prodflow_gateway.upstream_http``: keep-alive connections, httptools'
  response parser);
- ``aiohttp``: an aiohttp session, as the gateway used until it had its own client.

Serve: PYTHONPATH=bench python -m uvicorn pass_through_proxy:create_app --factory
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from prodflow_gateway.upstream_http import UpstreamPool
from yarl import URL

Scope = dict[str, Any]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
_HOP = frozenset({b"host", b"connection", b"content-length", b"transfer-encoding", b"keep-alive"})


class _GatewayClient:
    """The gateway's own client (``prodflow_gateway.upstream_http.UpstreamPool``)."""

    def __init__(self, upstream: str) -> None:
        self.pool = UpstreamPool(upstream, connections=100, connect_timeout_s=5.0, read_timeout_s=60.0)

    async def __call__(self, scope: Scope) -> Answer:
        query = scope["query_string"]
        target = scope["raw_path"] + (b"?" + query if query else b"")
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        answer = await self.pool.send(scope["method"], target, headers)
        body = await answer.read()
        answer.release()
        return answer.status, answer.headers, body


class _AiohttpClient:
    """An aiohttp session as the gateway had until it got its own client: no cookies, no decompression."""

    def __init__(self, upstream: str) -> None:
        self.base_url = upstream.rstrip("/")
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope) -> Answer:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=0, keepalive_timeout=2.0),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        query = scope["query_string"].decode()
        url = URL(self.base_url + scope["raw_path"].decode() + ("?" + query if query else ""), encoded=True)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in _HOP]
        response = await self.session.request(scope["method"], url, headers=headers, allow_redirects=False)
        body = await response.read()
        response.release()
        return response.status, list(response.raw_headers), body


def create_app() -> Callable[[Scope, Any, Any], Awaitable[None]]:
    """The pass-through app for ``PASS_THROUGH_UPSTREAM`` through ``PASS_THROUGH_CLIENT``."""
    upstream = os.environ["PASS_THROUGH_UPSTREAM"]
    kind = os.environ.get("PASS_THROUGH_CLIENT", "gateway")
    client = _GatewayClient(upstream) if kind == "gateway" else _AiohttpClient(upstream)

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
