"""Async CouchDB client: one connection pool per server, JSON requests and their errors."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import httpx
import orjson
from yarl import URL

from prodflow_core.couch.database import CouchDatabase, Doc
from prodflow_core.couch.errors import CouchError, error_for
from prodflow_core.credentials import split_userinfo

_log = logging.getLogger("prodflow.couch.client")


class CouchClient:
    """A connection to one CouchDB server.

    Credentials come as ``auth`` (user, password) or as the userinfo of ``url``; either way they travel in an
    ``Authorization`` header, never in a request URL, so :attr:`url` and the request log carry none.

    Requests go through aiohttp: measured here, an httpx request cost ~1.35 ms of the caller's CPU and an aiohttp
    one ~0.2 ms, paid on every CouchDB call of every service. A failure to reach the server or to read its answer
    still raises httpx's :class:`httpx.TransportError` family (``ConnectError``, ``ReadTimeout``, ...), which the
    services' retry loops and the 503 problem handler catch. Answers are asked for uncompressed: on the links
    between services and CouchDB, gzip only costs CPU at both ends.
    """

    def __init__(self, url: str, *, auth: tuple[str, str] | None = None, timeout: float = 60.0) -> None:
        bare, user, password = split_userinfo(url.rstrip("/"))
        if auth is None and user:
            auth = (user, password or "")
        self.url = bare
        """The server's URL without credentials: safe to show."""
        self.user = auth[0] if auth else None
        self._headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        if auth:
            self._headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._filters_changes: bool | None = None

    def __repr__(self) -> str:
        return f"CouchClient({self.url!r}, user={self.user!r})"

    async def __aenter__(self) -> CouchClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        # Made at the first request: a session belongs to the event loop running it.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=50),
                timeout=_timeout(self._timeout),
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def db(self, name: str) -> CouchDatabase:
        """A handle on database ``name`` (nothing is sent)."""
        return CouchDatabase(self, name)

    async def info(self) -> Doc:
        """The server's welcome document (``GET /``)."""
        info: Doc = await self.request("GET", "")
        return info

    async def filters_changes(self) -> bool:
        """Whether the server filters ``_changes`` by a selector (Apache CouchDB; PouchDB Server has no
        ``POST _changes`` and drops the connection on a ``selector`` parameter). Asked once per client."""
        if self._filters_changes is None:
            self._filters_changes = "couchdb" in await self.info()
        return self._filters_changes

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
        ok_statuses: Iterable[int] = (),
    ) -> Any:
        """Send one request and decode its JSON answer; error statuses raise :class:`CouchError`."""
        target, options = self._prepared(path, params, json_body, timeout)
        try:
            async with self._http().request(method, URL(target, encoded=True), **options) as response:
                status = response.status
                content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, method, target) from exc
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("CouchDB %s %s: %d", method, f"{self.url}/{path}", status)
        if status >= 400 and status not in set(ok_statuses):
            raise _error(status, content)
        return orjson.loads(content) if content else None

    @contextlib.asynccontextmanager
    async def stream_lines(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json_body: Any = None, idle_s: float
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Send one request whose answer is read line by line as the server sends it (a continuous ``_changes``
        feed). An error status raises :class:`CouchError`; no byte for ``idle_s`` raises ``httpx.ReadTimeout``."""
        target, options = self._prepared(path, params, json_body, idle_s)
        try:
            async with self._http().request(method, URL(target, encoded=True), **options) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.read())
                yield _lines(response.content)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, method, target) from exc

    def _prepared(
        self, path: str, params: dict[str, Any] | None, json_body: Any, timeout: float | None
    ) -> tuple[str, dict[str, Any]]:
        query = _encode_params(params)
        target = f"{self.url}/{path}" + (f"?{urlencode(query, quote_via=quote)}" if query else "")
        body = orjson.dumps(json_body, option=orjson.OPT_NON_STR_KEYS) if json_body is not None else None
        options: dict[str, Any] = {"data": body, "headers": _JSON_BODY} if body is not None else {}
        if timeout is not None:
            options["timeout"] = _timeout(timeout)
        return target, options


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The lines of an answer as they come, however long: aiohttp's own line reading refuses a line past its
    buffer's limit (a 3 MB document did; an event naming thousands of jobs is that long), and a follower then
    met the same line at every try."""
    parts: list[bytes] = []
    async for chunk in content.iter_any():
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            parts.append(chunk[start:end])
            yield b"".join(parts)
            parts, start = [], end + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts)


def _error(status: int, content: bytes) -> CouchError:
    try:
        answer = orjson.loads(content)
    except ValueError:
        answer = {"error": "unknown", "reason": content[:200].decode("utf-8", "replace")}
    return error_for(status, str(answer.get("error", "")), str(answer.get("reason", "")))


_JSON_BODY = {"Content-Type": "application/json"}


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    """No bound on the whole exchange (a ``_bulk_docs`` of 2,000 documents is long); each wait is bounded."""
    return aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)


def _transport_error(exc: BaseException, method: str, target: str) -> httpx.TransportError:
    """The httpx error a caller of an httpx client would have seen (see :class:`CouchClient`)."""
    where = f"{method} {target}: {exc!r}"
    request = httpx.Request(method, target)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(where, request=request)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(where, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(where, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(where, request=request)
    return httpx.NetworkError(where, request=request)


def _encode_params(params: dict[str, Any] | None) -> dict[str, str] | None:
    """View/changes parameters: keys and booleans JSON-encoded as CouchDB expects."""
    if not params:
        return None
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in {"key", "startkey", "endkey", "start_key", "end_key"} or isinstance(value, bool):
            out[name] = json.dumps(value)
        else:
            out[name] = str(value)
    return out
