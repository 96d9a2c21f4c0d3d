"""The floor of any Python hop, for ``bench_gateway.py``: a relay with no ASGI server and no coroutine per call.

An asyncio protocol (uvloop) parses each request with httptools and writes it to an idle keep-alive connection
to ``RAW_RELAY_UPSTREAM``, whose answer, parsed by httptools too, is written back from the parser's callbacks.
No routing, authentication, timeouts, streaming or error handling: an instrument that shows what one hop costs
on these cores, not a proxy to run. ``pass_through_proxy.py`` is the same hop behind uvicorn.

Run: RAW_RELAY_UPSTREAM=http://127.0.0.1:PORT python bench/raw_relay.py PORT
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import cast
from urllib.parse import urlsplit

import httptools
import uvloop

_HOP = frozenset({b"host", b"connection", b"content-length", b"transfer-encoding", b"keep-alive"})


class _Messages(asyncio.Protocol):
    """A connection whose parser collects each message's head (hop-by-hop headers left out) and body."""

    parser: httptools.HttpRequestParser | httptools.HttpResponseParser  # each subclass has its one kind

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.head: list[bytes] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.head, self.body = [], []

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() not in _HOP:
            self.head.append(b"%s: %s\r\n" % (name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)


class _Upstream(_Messages):
    """One keep-alive connection to the upstream; relays each answer to the caller that sent the request."""

    parser: httptools.HttpResponseParser

    def __init__(self, idle: list[_Upstream]) -> None:
        super().__init__()
        self.parser = httptools.HttpResponseParser(self)
        self.idle = idle
        self.caller: _Caller | None = None

    def send(self, caller: _Caller, request: bytes) -> None:
        assert self.transport is not None
        self.caller = caller
        self.transport.write(request)

    def on_message_complete(self) -> None:
        caller, self.caller = self.caller, None
        self.idle.append(self)
        assert caller is not None
        caller.answer(self.parser.get_status_code(), self.head, b"".join(self.body))


class _Caller(_Messages):
    """One connection from a caller; each parsed request goes to an idle upstream connection (or a new one)."""

    parser: httptools.HttpRequestParser

    def __init__(self, upstream: tuple[str, int], idle: list[_Upstream]) -> None:
        super().__init__()
        self.parser = httptools.HttpRequestParser(self)
        self.upstream, self.idle = upstream, idle
        self.connecting: set[asyncio.Task[None]] = set()
        self.url = b""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        length = b"content-length: %d\r\n\r\n" % len(body) if body else b"\r\n"
        request = b"".join([self.parser.get_method(), b" ", self.url, b" HTTP/1.1\r\nhost: upstream\r\n",
                            *self.head, length, body])  # fmt: skip
        if self.idle:
            self.idle.pop().send(self, request)
        else:
            task = asyncio.ensure_future(self._connect(request))
            self.connecting.add(task)
            task.add_done_callback(self.connecting.discard)

    async def _connect(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        _, upstream = await loop.create_connection(lambda: _Upstream(self.idle), *self.upstream)
        upstream.send(self, request)

    def answer(self, status: int, head: list[bytes], body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(b"".join([b"HTTP/1.1 %d -\r\n" % status, *head,
                                       b"content-length: %d\r\n\r\n" % len(body), body]))  # fmt: skip


async def _serve(port: int, upstream: str) -> None:
    parts = urlsplit(upstream)
    target, idle = (parts.hostname or "127.0.0.1", parts.port or 80), cast(list[_Upstream], [])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Caller(target, idle), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(_serve(int(sys.argv[1]), os.environ["RAW_RELAY_UPSTREAM"]))
