"""SSE fan-out: the gateway's requests to the CouchDB-API server with 1,000 idle SSE clients vs none.

Starts a CouchDB-API server (``--couch``, bench/servers.py), a counting reverse proxy in front of it (its own
process), and the whole system with the embedded runner; the gateway is then restarted pointed at the proxy, so
every request it makes to CouchDB is counted (the services keep theirs, which SSE clients do not change, out of
the count). Events are published straight to the server (not counted) at a steady rate, once with no SSE client
connected and once with ``--clients`` idle clients on ``/api/events`` (they only read their stream). Figures:
the requests/s that reached the proxy while publishing, and the requests per event from the first event until
every client had received every one (which the bench checks).
Run: uv run python bench/bench_sse.py [--json] [--couch pouchdb|couchdb] [--clients 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_cli.runner import EmbeddedSystem, free_port_block
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.server import free_port, wait_until_up
from prodflow_core.events import EventPublisher, make_event
from servers import add_couch_option, bench_couch

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


def _serve_counting_proxy(upstream: str, port: int, counter: Any) -> None:
    """Process target: an ASGI reverse proxy to ``upstream`` that adds 1 to ``counter`` per request."""
    import uvicorn

    limits = httpx.Limits(max_connections=None)
    client = httpx.AsyncClient(base_url=upstream, timeout=300.0, limits=limits)  # long-polls wait

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        with counter.get_lock():
            counter.value += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        headers = [(k, v) for k, v in scope["headers"] if k.decode().lower() not in _HOP]
        request = client.build_request(scope["method"], upstream + target.decode(), headers=headers, content=body)
        response = await client.send(request, stream=True)
        try:
            out = [(k, v) for k, v in response.headers.raw if k.decode().lower() not in _HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Client:
    """One SSE client on a raw socket: it reads its stream and counts the events."""

    def __init__(self, expect: int) -> None:
        self.events = 0
        self.expect = expect
        self.connected = asyncio.Event()
        self.done = asyncio.Event()

    async def run(self, host: str, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        head = f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        writer.write((head + "Accept: text/event-stream\r\n\r\n").encode())
        try:
            while line := await reader.readline():
                if line.startswith(b"retry:"):
                    self.connected.set()
                elif line.startswith(b"id: "):
                    self.events += 1
                    if self.events >= self.expect:
                        self.done.set()
        finally:
            writer.close()


async def _publish(couch_url: str, events_db: str, rate: float, count: int) -> None:
    async with CouchClient(couch_url) as couch:
        publisher = EventPublisher(couch.db(events_db), "/services/bench")
        start = time.monotonic()
        for sent in range(1, count + 1):
            await publisher.publish(make_event("job.completed", publisher.source, experiment="bench", data={}))
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))


async def _phase(
    system: EmbeddedSystem, couch_url: str, counter: Any, args: argparse.Namespace, n: int
) -> tuple[float, float]:
    """With ``n`` SSE clients connected: requests/s reaching the proxy while events are published, and requests
    per event from the first event until every client had every one (a slow fan-out reads on after publishing)."""
    count = round(args.rate * args.seconds)
    clients = [Client(count) for _ in range(n)]
    port = int(system.gateway_url.rsplit(":", 1)[1])
    token = system.admin_token() or ""
    tasks = [asyncio.create_task(c.run("127.0.0.1", port, token)) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 300)
        await asyncio.sleep(2.0)  # let the connections settle
        before = counter.value
        start = time.monotonic()
        await _publish(couch_url, "prodflow-events", args.rate, count)
        rate = float(counter.value - before) / (time.monotonic() - start)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), 300)
        per_event = float(counter.value - before) / count
        short = [c.events for c in clients if c.events != count]
        if short:
            raise SystemExit(f"{len(short)} of {n} clients got {min(short)}..{max(short)} of {count} events")
        return rate, per_event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _with_userinfo(url: str, credentials_from: str) -> str:
    """``url`` carrying the user and password of ``credentials_from`` (CouchDB 3 wants its admin everywhere)."""
    userinfo = urlsplit(credentials_from).netloc.rpartition("@")[0]
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}" if userinfo else parts.netloc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="events published per second")
    add_couch_option(parser)
    args = parser.parse_args()
    counter = multiprocessing.Value("q", 0)
    with tempfile.TemporaryDirectory() as tmp, bench_couch(args.couch) as couch:
        port = free_port()
        proxy = multiprocessing.Process(target=_serve_counting_proxy, args=(couch.url, port, counter), daemon=True)
        proxy.start()
        proxy_url = _with_userinfo(f"http://127.0.0.1:{port}", couch.url)
        os.environ["PRODFLOW_COUCHDB_URL"] = couch.url  # the embedded runner uses this server instead of its own
        system = EmbeddedSystem(data_dir=Path(tmp), port=free_port_block())
        try:
            wait_until_up(proxy_url)
            system.start()
            # Only the gateway goes through the proxy: what is counted is what the gateway asks of CouchDB.
            system.kill("gateway")
            system.env["PRODFLOW_COUCHDB_URL"] = proxy_url
            system.restart("gateway")
            idle = asyncio.run(_phase(system, couch.url, counter, args, 0))
            loaded = asyncio.run(_phase(system, couch.url, counter, args, args.clients))
        finally:
            system.stop()
            proxy.terminate()
            proxy.join(10)
    figures = [
        Figure(f"gateway->CouchDB req/s, {args.clients} SSE clients", loaded[0], "/s", "same, no SSE client", idle[0]),
        Figure(f"gateway->CouchDB req/event, {args.clients} SSE", loaded[1], "", "same, no SSE client", idle[1]),
    ]
    print_table(figures, as_json=args.json, server=couch.description)


if __name__ == "__main__":
    main()
