"""The gateway's client towards a service, against a loopback server that answers as each test scripts it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from prodflow_core.testing import free_port
from prodflow_gateway.upstream_http import _HIGH_WATER, UpstreamError, UpstreamPool

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
"""How the server handles its ``n``th connection (from 0)."""

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@asynccontextmanager
async def scripted(script: Script, **pool_options: float) -> AsyncIterator[tuple[UpstreamPool, list[bytes]]]:
    """A pool towards a server running ``script`` per connection; yields it and every request head received."""
    heads: list[bytes] = []
    accepted = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted, n = accepted + 1, accepted
        try:
            await script(_Recording(reader, heads), writer, n)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    options = {"connections": 4, "connect_timeout_s": 2.0, "read_timeout_s": 2.0, **pool_options}
    pool = UpstreamPool(f"http://127.0.0.1:{port}/base/", **options)  # type: ignore[arg-type]
    try:
        yield pool, heads
    finally:
        await pool.aclose()
        server.close()


class _Recording(asyncio.StreamReader):
    """A reader whose ``readuntil(b"\\r\\n\\r\\n")`` (a request head) is also kept in ``heads``."""

    def __init__(self, reader: asyncio.StreamReader, heads: list[bytes]) -> None:
        self._reader, self._heads = reader, heads

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        data = await self._reader.readuntil(separator)
        if separator == b"\r\n\r\n":
            self._heads.append(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)

    async def read(self, n: int = -1) -> bytes:
        return await self._reader.read(n)


async def answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int) -> None:
    while True:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)


async def test_calls_in_turn_share_one_kept_connection_with_the_base_path_and_host() -> None:
    async with scripted(answer_each) as (pool, heads):
        for _ in range(5):
            answer = await pool.send("GET", b"/api/jobs?limit=10", [(b"x-one", b"1")])
            assert (answer.status, await answer.read()) == (200, b"ok")
            answer.release()
    assert len(heads) == 5
    assert heads[0].startswith(b"GET /base/api/jobs?limit=10 HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nx-one: 1\r\n" in heads[0]
    assert len(pool._idle) == 0  # closed by aclose: they were all one connection, below


async def test_more_calls_than_connections_wait_for_one_to_be_released() -> None:
    connections: list[int] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        connections.append(n)
        await answer_each(reader, writer, n)

    async with scripted(count, connections=1) as (pool, _):
        first = await pool.send("GET", b"/a", [])
        second = asyncio.create_task(pool.send("GET", b"/b", []))
        await asyncio.sleep(0.1)
        assert not second.done()  # the one connection is still held by the first answer
        assert await first.read() == b"ok"
        first.release()
        answer = await second
        assert await answer.read() == b"ok"
        answer.release()
    assert connections == [0]


async def test_an_interim_answer_is_skipped_and_an_answer_to_head_ends_with_its_head() -> None:
    async def interim_then_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\nabc")
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")  # what a GET would have: no body follows
        await reader.read()

    async with scripted(interim_then_head) as (pool, _):
        created = await pool.send("POST", b"/r", [], b"{}")
        assert (created.status, await created.read()) == (201, b"abc")
        created.release()
        head = await pool.send("HEAD", b"/r", [])
        assert (head.status, head.content_length, await head.read()) == (200, 10, b"")
        head.release()
        assert pool._idle == []  # not kept: nothing tells where a HEAD answer's connection stands


async def test_a_kept_connection_the_service_closed_is_replaced_once_for_a_call_it_can_send_again() -> None:
    async def close_after_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        if n == 0:
            await reader.readuntil(b"\r\n\r\n")  # the next call comes on the kept connection: closed unanswered
            return
        await answer_each(reader, writer, n)

    async with scripted(close_after_one) as (pool, heads):
        for _ in range(2):
            answer = await pool.send("GET", b"/a", [])
            assert await answer.read() == b"ok"
            answer.release()
    assert len(heads) == 3  # the second call twice: unanswered, then on a new connection


async def test_a_streamed_body_is_not_sent_again_when_its_connection_closes() -> None:
    async def close_after_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await reader.readuntil(b"\r\n\r\n")

    async def body() -> AsyncIterator[bytes]:
        yield b"part"

    async with scripted(close_after_one) as (pool, heads):
        answer = await pool.send("GET", b"/a", [])
        await answer.read()
        answer.release()
        with pytest.raises(UpstreamError):
            await pool.send("POST", b"/b", [], body())
    assert len(heads) == 2


async def test_a_body_of_unknown_length_is_sent_chunked_and_a_whole_one_with_its_length() -> None:
    received: list[bytes] = []

    async def read_bodies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.append(await reader.readuntil(b"0\r\n\r\n"))
        writer.write(OK)
        await reader.readuntil(b"\r\n\r\n")
        received.append(await reader.readexactly(5))
        writer.write(OK)

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"abc", b"", b"defgh"):
            yield part

    async with scripted(read_bodies) as (pool, heads):
        for body in (parts(), b"12345"):
            answer = await pool.send("POST", b"/b", [], body)
            assert await answer.read() == b"ok"
            answer.release()
    assert b"\r\ntransfer-encoding: chunked\r\n" in heads[0]
    assert received[0] == b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    assert b"\r\ncontent-length: 5\r\n" in heads[1] and received[1] == b"12345"


async def test_a_long_answer_is_read_no_further_ahead_than_the_high_water_mark() -> None:
    size = 8 * _HIGH_WATER
    payload = bytes(i % 251 for i in range(size))

    async def long_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + payload)
        await writer.drain()

    async with scripted(long_answer) as (pool, _):
        answer = await pool.send("GET", b"/big", [])
        chunks = answer.chunks()
        received = [await anext(chunks)]
        await asyncio.sleep(0.3)  # the server has written it all; the client has not taken it
        connection = answer._connection
        assert connection is not None and connection.buffered <= _HIGH_WATER + (1 << 18)
        received += [chunk async for chunk in chunks]
        answer.release()
    assert b"".join(received) == payload


async def test_an_answer_without_length_ends_with_its_connection() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nhello")

    async with scripted(until_close) as (pool, _):
        answer = await pool.send("GET", b"/a", [])
        assert await answer.read() == b"hello"
        answer.release()
        assert pool._idle == []


async def test_failures_are_upstream_errors_or_timeouts() -> None:
    async def misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if n == 0:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")  # then the connection closes
        elif n == 1:
            writer.write(b"not http at all\r\n\r\n")
        else:
            await reader.read()  # never answers (until the client gives up and closes)

    async with scripted(misbehave, read_timeout_s=0.3) as (pool, _):
        cut = await pool.send("GET", b"/a", [])
        with pytest.raises(UpstreamError, match="middle of its answer"):
            await cut.read()
        cut.release()
        with pytest.raises(UpstreamError, match="not HTTP"):
            await pool.send("GET", b"/a", [])
        with pytest.raises(TimeoutError):
            await pool.send("GET", b"/a", [])
    nobody = UpstreamPool(f"http://127.0.0.1:{free_port()}", connections=1, connect_timeout_s=1, read_timeout_s=1)
    with pytest.raises(UpstreamError, match="no connection"):
        await nobody.send("GET", b"/", [])
    assert nobody._slots._value == 1  # every failure gave its connection's slot back
