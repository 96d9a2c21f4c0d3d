"""Webhooks: event → delivered at a local receiver, p50/p99, with 100 subscriptions, beside event → SSE client.

Starts a CouchDB-API server (``--couch``, bench/servers.py) and the whole system with the embedded runner (the
notifier allowed to reach loopback), a receiver process with one path per subscription, ``--subscriptions``
webhooks through the gateway, and one SSE client on the gateway's ``/api/events``. Events are then published
straight into the stream at ``--rate`` per second; each is timed from its publication to its arrival at the SSE
client (the baseline) and at each of the receivers' paths. The bench checks that every subscription received
every event exactly once and in order.
Run: uv run python bench/bench_webhooks.py [--json] [--couch pouchdb|couchdb] [--subscriptions 100] [--events 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_cli.runner import EmbeddedSystem, free_port_block
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.server import free_port, wait_until_up
from prodflow_core.events import EventPublisher, make_event
from servers import add_couch_option, bench_couch


def _serve_receiver(port: int) -> None:
    """Process target: answers 204 to ``POST /hook/{n}`` and keeps (n, webhook-id, arrival time); ``GET /log``."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    got: list[tuple[int, str, float]] = []

    async def hook(request: Request) -> Response:
        await request.body()
        got.append((int(request.path_params["n"]), request.headers["webhook-id"], time.time()))
        return Response(status_code=204)

    async def log(_request: Request) -> JSONResponse:
        return JSONResponse(got)

    app = Starlette(routes=[Route("/hook/{n:int}", hook, methods=["POST"]), Route("/log", log)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _sse(gateway: str, token: str, seen: dict[str, float], ready: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(30, read=None)  # the stream stays open for the run
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream("GET", f"{gateway}/api/events", headers=headers) as r,
    ):
        ready.set()
        async for line in r.aiter_lines():
            if line.startswith("data:"):
                seen.setdefault(json.loads(line[5:])["id"], time.time())


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _run(system: EmbeddedSystem, couch_url: str, receiver: str, args: argparse.Namespace) -> dict[str, Any]:
    token = system.admin_token() or ""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=system.gateway_url, headers=headers, timeout=30) as api:
        for n in range(args.subscriptions):
            body = {"url": f"{receiver}/hook/{n}", "event_types": ["org.prodflow.job.*"], "experiments": ["snoplus"]}
            answer = await api.post("/api/webhooks", json=body)
            answer.raise_for_status()
    seen: dict[str, float] = {}
    ready = asyncio.Event()
    sse = asyncio.create_task(_sse(system.gateway_url, token, seen, ready))
    await ready.wait()
    published: dict[str, float] = {}
    order: list[str] = []
    async with CouchClient(couch_url) as couch:
        publisher = EventPublisher(couch.db("prodflow-events"), "/services/monitor")
        for i in range(args.events):
            event = make_event("job.completed", "/services/monitor", experiment="snoplus", data={"i": i})
            published[event.id] = time.time()
            order.append(event.id)
            await publisher.publish(event)
            await asyncio.sleep(1 / args.rate)
    deadline = time.monotonic() + 300
    async with httpx.AsyncClient(timeout=30) as client:
        while True:
            got = (await client.get(f"{receiver}/log")).json()
            if len(got) >= args.events * args.subscriptions and len(seen) >= args.events:
                break
            assert time.monotonic() < deadline, f"{len(got)} deliveries, {len(seen)} SSE events after 300 s"
            await asyncio.sleep(0.5)
    sse.cancel()
    per_subscription: dict[int, list[str]] = {}
    for n, event_id, _ in got:
        per_subscription.setdefault(n, []).append(event_id)
    assert all(ids == order for ids in per_subscription.values()), "a subscription got events out of order or twice"
    delivered = [at - published[event_id] for _, event_id, at in got]
    streamed = [seen[event_id] - published[event_id] for event_id in order]
    return {"delivered": delivered, "streamed": streamed, "span": max(at for *_, at in got) - min(published.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--rate", type=float, default=2.0, help="events published per second")
    add_couch_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_couch(args.couch) as couch:
        port = free_port()
        receiver = multiprocessing.Process(target=_serve_receiver, args=(port,), daemon=True)
        receiver.start()
        os.environ["PRODFLOW_COUCHDB_URL"] = couch.url  # the embedded runner uses this server instead of its own
        system = EmbeddedSystem(
            data_dir=Path(tmp), port=free_port_block(), extra_env={"NOTIFIER_ALLOWED_NETWORKS": '["127.0.0.1/32"]'}
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/log")
            system.start()
            result = asyncio.run(_run(system, couch.url, f"http://127.0.0.1:{port}", args))
        finally:
            system.stop()
            receiver.terminate()
            receiver.join(10)
    delivered, streamed = result["delivered"], result["streamed"]
    n = args.subscriptions
    figures = [
        Figure(f"event -> webhook delivered p50, {n} subscriptions", _percentile(delivered, 50), "s",
               "event -> SSE client p50", _percentile(streamed, 50)),
        Figure(f"event -> webhook delivered p99, {n} subscriptions", _percentile(delivered, 99), "s",
               "event -> SSE client p99", _percentile(streamed, 99)),
        Figure(f"webhook deliveries/s, {n} subscriptions", len(delivered) / result["span"], "/s",
               "offered (events/s x subscriptions)", args.rate * n),
    ]  # fmt: skip
    print_table(figures, as_json=args.json, server=couch.description)


if __name__ == "__main__":
    main()
