"""The gateway's connections towards the services: one pool of keep-alive connections per service.

The client is the gateway's own (``upstream_http``): httpx cost ~1.35 ms of client CPU per request here (~0.8 ms
in its own request and response models), aiohttp ~0.2 ms, keep-alive connections with httptools' parser less
again; the gateway pays it on every proxied call. A pool keeps its idle connections in a list, so its cost does
not grow with the connections open (httpcore scanned every connection of its pool).
"""

from __future__ import annotations

from prodflow_gateway.upstream_http import UpstreamPool


class Upstreams:
    """One pool per service, each keeping up to ``connections`` connections."""

    def __init__(self, urls: dict[str, str], *, timeout_s: float, connect_timeout_s: float, connections: int) -> None:
        self.base_urls = {name: url.rstrip("/") for name, url in urls.items()}
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._connections = connections
        self._pools: dict[str, UpstreamPool] = {}

    def client(self, service: str) -> UpstreamPool:
        """``service``'s pool (made at first use: its connections belong to the running event loop)."""
        pool = self._pools.get(service)
        if pool is None:
            # Idle connections are dropped after 2 s, before uvicorn closes them (after 5 s): with equal timeouts a
            # request sent on a connection the service was closing failed as a 502.
            pool = UpstreamPool(
                self.base_urls[service],
                connections=self._connections,
                connect_timeout_s=self._connect_timeout_s,
                read_timeout_s=self._timeout_s,
                idle_s=2.0,
            )
            self._pools[service] = pool
        return pool

    async def aclose(self) -> None:
        """Close every pool's idle connections."""
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
