"""What every answer of a service carries at the HTTP edge: the ``Allow`` of a path, and security headers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
"""The methods an ``Allow`` header may list, in the order it lists them."""
_PROBE = "PRODFLOW-PROBE"
"""A method no route declares: a route that takes it takes every method (a mount, a proxy) and says nothing."""

API_HEADERS: Mapping[str, str] = {"X-Content-Type-Options": "nosniff"}
"""Headers every answer of every service carries: browsers never guess a content type from a body."""


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> list[str]:
    """The methods some route of ``routes`` answers at the path of ``scope``: an ``Allow`` header's list.

    Every route is asked, not only the first whose path matches, so a path served by several routes (``GET``
    by one, ``POST`` by another) lists both. Routes that take any method (static files, the gateway's proxy)
    are left out: they tell nothing about the path.
    """
    routes = list(routes)
    allowed = [method for method in METHODS if _any_route_takes(routes, scope, method)]
    if "GET" in allowed and "HEAD" not in allowed:  # starlette answers HEAD wherever GET is
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return allowed


def _any_route_takes(routes: list[BaseRoute], scope: Scope, method: str) -> bool:
    return any(_full_match(route, scope, method) and not _full_match(route, scope, _PROBE) for route in routes)


def _full_match(route: BaseRoute, scope: Scope, method: str) -> bool:
    probe: Scope = {
        "type": "http",
        "method": method,
        "path": scope["path"],
        "root_path": scope.get("root_path", ""),
        "headers": [],
        "query_string": b"",
    }
    match, _child = route.matches(probe)
    return match is Match.FULL


class HeadersMiddleware:
    """Add ``headers`` to every HTTP answer that does not already carry them."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = API_HEADERS) -> None:
        self.app = app
        self._headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _value in message.get("headers", [])}
                extra = [(name, value) for name, value in self._headers if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
