"""Where webhooks may go: public addresses, or what an admin allowed; checked at creation and at each connection.

The connection-time check lives in an httpcore network backend: it resolves the host itself, checks every address
and connects to a checked one, so a name whose DNS changes after the creation check (rebinding) is refused too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_BODY_BYTES = 64 * 1024


class RefusedDestination(Exception):
    """A webhook URL or address the notifier may not reach."""


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses of ``host`` (every one ``getaddrinfo`` gives). Module-level so tests can substitute DNS."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _refused_kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    ):
        if flag:
            return kind
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """The admin's allow-list: networks and host names reachable although not public."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    resolve_timeout_s: float = 5.0

    @classmethod
    def of(cls, networks: Iterable[str], hosts: Iterable[str]) -> DestinationPolicy:
        """A policy from the settings' text (``NOTIFIER_ALLOWED_NETWORKS``, ``NOTIFIER_ALLOWED_HOSTS``)."""
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks), frozenset(h.lower() for h in hosts))

    def check_address(self, host: str, address: str) -> None:
        """Raise :class:`RefusedDestination` unless ``address`` (of ``host``) may be reached."""
        if host.lower() in self.hosts:
            return
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if any(ip in network for network in self.networks):
            return
        kind = _refused_kind(ip)
        if kind is not None:
            raise RefusedDestination(f"{host} resolves to {ip}, a {kind} address not in NOTIFIER_ALLOWED_NETWORKS")

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` and check every address; the addresses, all allowed."""
        try:
            async with asyncio.timeout(self.resolve_timeout_s):
                addresses = await resolve_host(host, port)
        except TimeoutError as exc:
            raise RefusedDestination(f"{host} did not resolve within {self.resolve_timeout_s} s") from exc
        except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid host name (a label over 63 characters)
            raise RefusedDestination(f"{host[:100]} does not resolve: {exc}") from exc
        if not addresses:
            raise RefusedDestination(f"{host} does not resolve")
        for address in addresses:
            self.check_address(host, address)
        return addresses

    async def check_url(self, url: str) -> None:
        """Raise :class:`RefusedDestination` unless ``url`` is http(s) and its host may be reached now."""
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:  # a bracket left open, a port out of range
            raise RefusedDestination(f"not a URL: {exc}") from exc
        if parts.scheme not in {"http", "https"} or not host:
            raise RefusedDestination("a webhook URL is http:// or https:// with a host")
        if parts.username or parts.password:
            raise RefusedDestination("a webhook URL carries no credentials (the signature authenticates)")
        await self.checked_addresses(host, port or (443 if parts.scheme == "https" else 80))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the policy allows, resolved at connect time."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve ``host``, refuse it if any address is refused, else connect to the first address that answers."""
        try:
            addresses = await self.policy.checked_addresses(host, port)
        except RefusedDestination as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """Never: webhooks go over TCP."""
        raise httpcore.ConnectError("webhooks do not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        """As httpcore's own backend."""
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, policy: DestinationPolicy, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend: the same pool, with the guarded one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def guarded_client(
    policy: DestinationPolicy, *, connect_s: float, read_s: float, connections: int
) -> httpx.AsyncClient:
    """The client deliveries use: the guarded backend, no redirects, no proxies from the environment, timeouts."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        transport=_GuardedTransport(policy, limits),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(read_s, connect=connect_s),
    )


async def read_capped(response: httpx.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """At most ``limit`` bytes of a streamed response's body (the rest is not read)."""
    body = b""
    async for chunk in response.aiter_raw():
        body += chunk[: limit - len(body)]
        if len(body) >= limit:
            break
    return body
