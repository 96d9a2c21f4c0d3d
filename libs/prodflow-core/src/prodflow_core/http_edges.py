"""What every answer of a service carries at the HTTP edge: the ``Allow`` of a path, and security headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
"""The methods an ``Allow`` header may list, in the order it lists them."""

API_HEADERS: Mapping[str, str] = {"X-Content-Type-Options": "nosniff"}
"""Headers every answer of every service carries: browsers never guess a content type from a body."""


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods of the path of ``scope``, as an ``Allow`` header lists them (empty: no route has the path).

    The path's routes are those of the most specific path template that matches it (``/requests/preview``
    before ``/requests/{id}``, as OpenAPI matches paths), all of them: starlette's own 405 names only the first
    route's methods, though ``GET`` and ``POST`` of one path are often two routes. Routes without a method list
    (mounts, the gateway's proxy) take any method and say nothing about the path.
    """
    probe: Scope = {"type": "http", "method": "GET", "path": scope["path"], "root_path": scope.get("root_path", "")}
    by_template: dict[str, set[str]] = {}
    for route in iter_route_contexts(routes):
        template, methods = route.path_format, route.methods
        if template is not None and methods and route.matches(probe)[0] is not Match.NONE:
            by_template.setdefault(template, set()).update(methods)
    if not by_template:
        return []
    most_specific = min(by_template, key=lambda template: template.count("{"))  # first of the least templated
    return [method for method in METHODS if method in by_template[most_specific]]


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
