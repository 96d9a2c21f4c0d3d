"""HTTP clients of the gateway towards the services: several small connection pools per service."""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Iterator

import certifi
import httpx


class Upstreams:
    """``pools`` clients per service, each with up to ``connections`` connections, handed out in turn.

    httpcore scans every connection of a pool at each request event, so one pool with hundreds of connections
    costs CPU per request that grows with the load; a few small pools keep that cost flat.
    """

    def __init__(self, urls: dict[str, str], *, timeout: httpx.Timeout, pools: int, connections: int) -> None:
        # Idle connections are dropped after 2 s, before uvicorn closes them (after 5 s): with equal timeouts a
        # request sent on a connection the service was closing failed as a 502 (``RemoteProtocolError``).
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0)
        tls = ssl.create_default_context(cafile=certifi.where())  # loaded once: ~0.2 s per client otherwise
        self.base_urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._clients = {
            name: [httpx.AsyncClient(timeout=timeout, limits=limits, verify=tls) for _ in range(pools)] for name in urls
        }
        self._turns: dict[str, Iterator[httpx.AsyncClient]] = {
            name: itertools.cycle(clients) for name, clients in self._clients.items()
        }

    def client(self, service: str) -> httpx.AsyncClient:
        """The next client of ``service``'s pools."""
        return next(self._turns[service])

    async def aclose(self) -> None:
        """Close every pool."""
        for clients in self._clients.values():
            for client in clients:
                await client.aclose()
