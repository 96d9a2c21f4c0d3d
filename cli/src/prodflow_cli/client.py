"""A small typed HTTP client of the gateway: bearer token, JSON in and out, errors as :class:`ApiError`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from prodflow_cli.config import Config
from prodflow_cli.errors import ApiError, NotLoggedIn, Unreachable

JSON = Any
"""A decoded JSON value."""
Params = Mapping[str, str | int | float | bool | None]


class Gateway:
    """Calls to one gateway with one token; a context manager that closes its connection pool."""

    def __init__(self, config: Config, *, timeout_s: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.config = config
        headers = {"User-Agent": "prodflow-cli", "Accept": "application/json, application/problem+json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.Client(
            base_url=config.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10.0), transport=transport
        )

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def require_token(self) -> None:
        """Fail early, with a hint, when no token is configured."""
        if not self.config.token:
            raise NotLoggedIn("no token: run 'prodflow login', or set PRODFLOW_TOKEN")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json_body: JSON | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> httpx.Response:
        """Send one request; an error status raises :class:`ApiError`, a network failure :class:`Unreachable`."""
        if auth:
            self.require_token()
        kwargs: dict[str, Any] = {"params": _clean(params), "headers": dict(headers or {})}
        if json_body is not None:
            kwargs["json"] = json_body
        elif content is not None:
            kwargs["content"] = content
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the gateway at {self.config.url}: {_reason(exc)}") from exc
        if response.is_error:
            raise error_of(response)
        return response

    def get(self, path: str, params: Params | None = None, *, auth: bool = True) -> JSON:
        """GET ``path`` and decode its JSON."""
        return _json(self.request("GET", path, params=params, auth=auth))

    def items(self, path: str, params: Params, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` items of a paged listing (pages of at most 1,000, following each ``next``), and whether
        more remain."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(found) < limit:
            page = self.get(path, {**params, "limit": min(1000, limit - len(found)), "cursor": cursor})
            found += page["items"]
            cursor = page.get("next")
            if not cursor:
                break
        return found, bool(cursor)

    def post(self, path: str, body: JSON | None = None, params: Params | None = None, **kw: Any) -> JSON:
        """POST a JSON body (``{}`` if none) and decode the answer."""
        return _json(self.request("POST", path, params=params, json_body={} if body is None else body, **kw))

    def patch(self, path: str, body: JSON) -> JSON:
        """PATCH a JSON body and decode the answer."""
        return _json(self.request("PATCH", path, json_body=body))

    def put(self, path: str, body: JSON) -> JSON:
        """PUT a JSON body and decode the answer."""
        return _json(self.request("PUT", path, json_body=body))

    def delete(self, path: str) -> JSON:
        """DELETE and decode the answer (``None`` for an empty one)."""
        return _json(self.request("DELETE", path))

    def text(self, path: str, params: Params | None = None) -> str:
        """GET a text resource (a .exactly file, a log)."""
        return self.request("GET", path, params=params).text

    @contextmanager
    def stream(
        self, path: str, *, params: Params | None = None, headers: Mapping[str, str] | None = None, read_s: float
    ) -> Iterator[httpx.Response]:
        """A streamed GET (SSE, live logs); ``read_s`` bounds the silence between chunks."""
        self.require_token()
        timeout = httpx.Timeout(10.0, read=read_s)
        try:
            with self._http.stream(
                "GET", path, params=_clean(params), headers=dict(headers or {}), timeout=timeout
            ) as response:
                if response.is_error:
                    response.read()
                    raise error_of(response)
                yield response
        except httpx.TransportError as exc:
            raise Unreachable(f"lost the gateway at {self.config.url}: {_reason(exc)}") from exc


def error_of(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` of an error response, from its problem+json body or, failing that, its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:300]
        body = {"title": response.reason_phrase or "Error", "status": response.status_code, "detail": text}
    return ApiError(response.status_code, body)


def _json(response: httpx.Response) -> JSON:
    if not response.content:
        return None
    try:
        return response.json()
    except json.JSONDecodeError:
        return response.text


def _clean(params: Params | None) -> dict[str, str | int | float | bool] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _reason(exc: httpx.TransportError) -> str:
    return str(exc) or exc.__class__.__name__


def segment(value: str | int) -> str:
    """``value`` quoted as one URL path segment (ids and labels come from users)."""
    return quote(str(value), safe="")
