"""A reverse proxy on loopback that records every request it forwards (to count what reaches CouchDB)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from prodflow_core.testing import serving

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


@dataclass(frozen=True)
class Seen:
    """One forwarded request."""

    method: str
    path: str
    query: dict[str, list[str]]

    @property
    def is_longpoll(self) -> bool:
        """A read that waits for changes: a long poll, or a continuous feed (the window's follower)."""
        return self.query.get("feed") in (["longpoll"], ["continuous"])


@dataclass
class CountingProxy:
    """The requests forwarded so far, in arrival order."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    def changes_reads(self, since: int = 0) -> list[Seen]:
        """``_changes`` requests after the first ``since`` requests."""
        return [s for s in self.seen[since:] if s.path.endswith("/_changes")]


def _app(upstream: str, proxy: CountingProxy) -> Any:
    client = httpx.AsyncClient(base_url=upstream, timeout=300.0)  # long-polls wait

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        query = scope["query_string"].decode()
        proxy.seen.append(Seen(scope["method"], scope["path"], parse_qs(query)))
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        target = scope["raw_path"].decode() + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k.decode().lower() not in _HOP]
        request = client.build_request(scope["method"], target, headers=headers, content=body)
        relay = asyncio.ensure_future(_relay(client, request, send))
        gone = asyncio.ensure_future(_disconnect(receive))
        # A caller that hangs up (a cancelled long-poll) ends the upstream request too: PouchDB holds it forever.
        await asyncio.wait([relay, gone], return_when=asyncio.FIRST_COMPLETED)
        for task in (relay, gone):
            task.cancel()
        await asyncio.gather(relay, gone, return_exceptions=True)

    return app


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _relay(client: httpx.AsyncClient, request: httpx.Request, send: Any) -> None:
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError:
        await send({"type": "http.response.start", "status": 502, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    try:
        out = [(k, v) for k, v in response.headers.raw if k.decode().lower() not in _HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except httpx.HTTPError:
        return
    finally:
        await response.aclose()


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    """Serve a counting proxy to ``upstream`` on a free loopback port while the block runs."""
    proxy = CountingProxy()
    with serving(_app(upstream.rstrip("/"), proxy)) as url:
        proxy.url = url
        yield proxy
