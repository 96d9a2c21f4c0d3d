"""The dashboard's static files, served with the headers that keep a browser from misusing them."""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",  # only a header can say this: browsers ignore it in a <meta> policy
    ]
)
DASHBOARD_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers older than CSP 2
    "X-Content-Type-Options": "nosniff",
}


class DashboardFiles(StaticFiles):
    """``StaticFiles`` whose answers carry :data:`DASHBOARD_HEADERS` (no framing, no referrer, no sniffing)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's answer, with the dashboard's headers."""
        response = await super().get_response(path, scope)
        response.headers.update(DASHBOARD_HEADERS)
        return response
