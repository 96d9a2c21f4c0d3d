"""The gateway's client towards a service alone: CPU per call of ``upstream_http.UpstreamPool`` against an aiohttp
session (what the gateway used before), at 1, 16, 64 and 256 calls in flight.

A loopback upstream in its own process (an asyncio protocol on uvloop; ``procs.serve_command`` starts it and
waits for its answer) answers every call at once with the same
500 bytes, so the figures are the client's own: this process's CPU time (user + system) per call, the loop,
the syscalls and the parsing included. Each client runs the same calls in turns with the other, so both see the
same machine. Issue 12 asks that the gateway's CPU per call stays flat from 1 to 256 in flight: each client's
figure at a load is also printed against its own figure at 16 in flight (at 1, a call waits for the upstream
alone, so its CPU includes a wake-up per call that concurrency shares).

Run: uv run python bench/bench_upstream_client.py [--json] [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop
from prodflow_gateway.upstream_http import UpstreamPool
from yarl import URL

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from procs import serve_command

LOADS = (1, 16, 64, 256)
TARGET = "/api/jobs?limit=10"
UPSTREAM = """
import asyncio, sys, uvloop
ANSWER = b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: 500\\r\\n\\r\\n" + b"x" * 500
class Answering(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""
    def data_received(self, data):
        self.pending += data
        while b"\\r\\n\\r\\n" in self.pending:
            self.pending = self.pending.partition(b"\\r\\n\\r\\n")[2]
            self.transport.write(ANSWER)
async def main(port):
    await asyncio.get_running_loop().create_server(Answering, "127.0.0.1", port)
    await asyncio.Event().wait()
uvloop.run(main(int(sys.argv[1])))
"""

Call = Callable[[], Awaitable[None]]


async def _cpu_per_call(call: Call, n: int, in_flight: int) -> float:
    """Microseconds of this process's CPU per call, ``n`` calls with ``in_flight`` at a time."""
    for _ in range(in_flight):
        await call()  # open the connections
    calls = iter(range(n))

    async def worker() -> None:
        for _ in calls:
            await call()

    start = time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return (time.process_time() - start) / n * 1e6


async def _measure(base_url: str, n: int) -> dict[tuple[str, int], float]:
    pool = UpstreamPool(base_url, connections=512, connect_timeout_s=5.0, read_timeout_s=60.0)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, keepalive_timeout=2.0),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
    url = URL(base_url + TARGET, encoded=True)

    async def own() -> None:
        answer = await pool.send("GET", TARGET.encode(), [(b"accept", b"*/*")])
        await answer.read()
        answer.release()

    async def with_aiohttp() -> None:
        response = await session.request("GET", url, headers=[("accept", "*/*")], allow_redirects=False)
        await response.read()
        response.release()

    spent: dict[tuple[str, int], float] = {}
    try:
        for in_flight in LOADS:
            for name, call in (("gateway client", own), ("aiohttp", with_aiohttp)):
                spent[name, in_flight] = await _cpu_per_call(call, n, in_flight)
    finally:
        await pool.aclose()
        await session.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=20000, help="calls per client and load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", UPSTREAM]
        with serve_command(lambda port: [*command, str(port)], {}, Path(tmp) / "upstream.log") as upstream:
            spent = uvloop.run(_measure(upstream.url, args.n))
    figures = []
    for in_flight in LOADS:
        figures.append(
            Figure(f"gateway client CPU per call, {in_flight} in flight", spent["gateway client", in_flight], "us",
                   f"aiohttp, {in_flight} in flight", spent["aiohttp", in_flight])
        )  # fmt: skip
    for name in ("gateway client", "aiohttp"):
        for in_flight in LOADS[2:]:
            figures.append(
                Figure(f"{name} CPU per call, {in_flight} in flight", spent[name, in_flight], "us",
                       f"{name}, 16 in flight", spent[name, 16])
            )  # fmt: skip
    print_table(figures, as_json=args.json)


if __name__ == "__main__":
    main()
