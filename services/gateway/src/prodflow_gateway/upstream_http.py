"""The gateway's HTTP/1.1 client towards one service: keep-alive connections, answers parsed by httptools.

Why not aiohttp: its request and response objects cost the gateway ~0.2 ms of CPU per proxied call here, as much
as the rest of the hop (``bench/bench_gateway.py``: a bare uvicorn pass-through added 1.39x to a direct call
with aiohttp, 1.22x with keep-alive connections and httptools alone). What a proxy needs of a client is kept:
- a pool per service with a limit on its connections; idle ones are dropped after ``idle_s``, before uvicorn
  closes them (after 5 s);
- connect and read timeouts (the read timeout bounds each wait for bytes of the answer);
- request bodies whole or streamed (chunked when their length is not known), with write flow control;
- answers read whole or streamed with back-pressure (reading pauses while more than ``_HIGH_WATER`` waits);
- interim (1xx) answers skipped; an answer to HEAD ends with its head;
- a call sent on a reused connection that the service had closed, which no byte of an answer came back on,
  is sent again once on a new connection (if its body can be sent again).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 20


class UpstreamError(ConnectionError):
    """The service could not be reached, or it broke off or garbled its answer."""


class _ClosedBeforeAnswer(UpstreamError):
    """The connection closed before any byte of an answer came back: the service never started answering."""


class _Connection(asyncio.Protocol):
    """One connection to the service, carrying one exchange at a time. httptools calls the ``on_*`` methods."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._reading_paused = False
        self.begin(head_only=False)

    # --- the exchange -------------------------------------------------------------------------------------------

    def begin(self, *, head_only: bool) -> None:
        """Get ready for the next answer; ``head_only``: it ends with its head (an answer to HEAD).

        The parser goes on from the previous answer: a connection is kept only after an answer that ended where
        the parser saw it end (see ``reusable``)."""
        self._head_only = head_only
        self._interim = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.reusable = False
        self.error: UpstreamError | None = None
        self._answered = False

    async def wait(self, timeout_s: float) -> None:
        """Until something new arrives (head, body, end or error); ``TimeoutError`` after ``timeout_s``."""
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _expire, waiter)  # lighter than asyncio.timeout: no task cancelled
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        """The body bytes that have arrived; reading resumes if it was paused for them."""
        body = b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return body

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self._wake()

    # --- asyncio.Protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the service's answer is not HTTP/1.1: {exc}"))
            self.close()
            return
        if self.buffered > _HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.status and not self.complete and self._reads_until_close():
            self.complete = True  # an answer with neither length nor chunks ends when its connection does
        elif not self._answered:
            self._fail(_ClosedBeforeAnswer("the service closed the connection before answering"))
        else:
            self._fail(UpstreamError("the service closed the connection in the middle of its answer"))
        self._wake()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    async def drain(self) -> None:
        """Until the service has taken what was written (write flow control)."""
        if self._writable is not None:
            await self._writable
        if self.closed and self.error is not None:
            raise self.error

    # --- httptools callbacks ----------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            self._interim = True  # 100 Continue, 103 Early Hints: the answer follows
            return
        self.status = status
        if self._head_only:
            self.complete = True  # its Content-Length is what a GET would have: no body follows
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            self.headers = []
            return
        self.complete = True
        self.reusable = self._parser.should_keep_alive() and not self._head_only
        self._wake()

    def _reads_until_close(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def close(self) -> None:
        """Close the connection (its exchange, if any, fails)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class UpstreamAnswer:
    """A service's answer: status and headers at once, the body read whole or streamed. :meth:`release` it."""

    def __init__(self, pool: UpstreamPool, connection: _Connection) -> None:
        self._pool = pool
        self._connection: _Connection | None = connection
        self.status = connection.status
        self.headers = connection.headers
        self.content_length = _content_length(connection.headers)

    async def read(self) -> bytes:
        """The whole body."""
        connection = self._held()
        parts = []
        while not connection.complete:
            parts.append(connection.take())
            await connection.wait(self._pool.read_timeout_s)
        parts.append(connection.take())
        return b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives."""
        connection = self._held()
        while True:
            chunk = connection.take()
            if chunk:
                yield chunk
            elif connection.complete:
                return
            else:
                await connection.wait(self._pool.read_timeout_s)

    def release(self) -> None:
        """Give the connection back (kept for the next call only if this answer was read to its end)."""
        if self._connection is not None:
            self._pool.give_back(self._connection)
            self._connection = None

    def _held(self) -> _Connection:
        if self._connection is None:
            raise RuntimeError("the answer was released")
        return self._connection


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            return int(value) if value.isdigit() else None
    return None


Body = bytes | AsyncIterator[bytes] | None
"""A request body: none, whole, or streamed (sent chunked unless its headers carry a Content-Length)."""


class UpstreamPool:
    """Keep-alive connections to one service, at most ``connections`` at once (more calls wait)."""

    def __init__(
        self,
        base_url: str,
        *,
        connections: int,
        connect_timeout_s: float,
        read_timeout_s: float,
        idle_s: float = 2.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._host_header = (parts.netloc.rpartition("@")[2]).encode("ascii")
        self.prefix = parts.path.rstrip("/").encode("ascii")
        """The base URL's path, put before each call's path."""
        self.connections = connections
        self.read_timeout_s = read_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle_s = idle_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(connections)

    async def send(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: Body = None
    ) -> UpstreamAnswer:
        """Send a call (``target``: path and query, percent-encoded) and return once its answer's head is in.

        ``headers`` must not hold Host, Connection or Transfer-Encoding; a streamed body without a Content-Length
        among them is sent chunked. Raises :class:`UpstreamError` or ``TimeoutError``.
        """
        await self._slots.acquire()
        try:
            connection, reused = self._idle_connection(), True
            if connection is None:
                connection, reused = await self._connect(), False
            try:
                return await self._exchange(connection, method, target, headers, body)
            except _ClosedBeforeAnswer:
                connection.close()
                if not reused or not (body is None or isinstance(body, bytes)):
                    raise
            connection = await self._connect()  # the service had closed the idle connection: once more, anew
            return await self._exchange(connection, method, target, headers, body)
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(
        self, connection: _Connection, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: Body
    ) -> UpstreamAnswer:
        try:
            connection.begin(head_only=method == "HEAD")
            chunked = body is not None and not isinstance(body, bytes) and not _has_length(headers)
            head = _head(method, self.prefix + target, self._host_header, headers, body, chunked)
            transport = connection.transport
            assert transport is not None
            if body is None or isinstance(body, bytes):
                transport.write(head + body if body else head)
            else:
                transport.write(head)
                await _send_streamed(connection, transport, body, chunked)
            while not connection.status:
                await connection.wait(self.read_timeout_s)
        except BaseException:
            connection.close()
            raise
        return UpstreamAnswer(self, connection)

    def give_back(self, connection: _Connection) -> None:
        """Keep ``connection`` for the next call if its exchange ended cleanly; close it otherwise."""
        if connection.complete and connection.reusable and not connection.closed and not connection.chunks:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        self._slots.release()

    def _idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the others expire first
            if connection.closed:
                continue
            if now - connection.idle_since < self._idle_s:
                self._drop_expired(now)
                return connection
            connection.close()
        return None

    def _drop_expired(self, now: float) -> None:
        while self._idle and now - self._idle[0].idle_since >= self._idle_s:
            self._idle.pop(0).close()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(_Connection, self._host, self._port, ssl=self._ssl)
        except OSError as exc:
            raise UpstreamError(f"no connection ({exc.__class__.__name__})") from exc
        return connection

    async def aclose(self) -> None:
        """Close the idle connections (those in use close as their answers are released)."""
        while self._idle:
            self._idle.pop().close()


def _has_length(headers: list[tuple[bytes, bytes]]) -> bool:
    return _content_length(headers) is not None


def _head(
    method: str,
    target: bytes,
    host: bytes,
    headers: list[tuple[bytes, bytes]],
    body: Body,
    chunked: bool,
) -> bytes:
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    elif isinstance(body, bytes) and not _has_length(headers):
        lines += (b"content-length: ", str(len(body)).encode("ascii"), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


async def _send_streamed(
    connection: _Connection, transport: asyncio.Transport, body: AsyncIterator[bytes], chunked: bool
) -> None:
    async for chunk in body:
        if connection.closed:
            break  # the service answered (or went away) before taking the whole body
        if not chunk:
            continue
        transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        await connection.drain()
    if chunked and not connection.closed:
        transport.write(b"0\r\n\r\n")
