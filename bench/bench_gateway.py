"""Gateway overhead: an authenticated call through the gateway vs the same call straight to the service.

Starts the whole system with the embedded runner (every service its own process, as in production), then:
- times N GETs of the monitor's job list (`/api/jobs?limit=10`) one at a time, through the gateway and straight
  to the monitor, alternating (the serial overhead ratio); in the same turns, through two bare pass-through
  proxies (``pass_through_proxy.py``: uvicorn and a relay, with the gateway's client or an aiohttp one), a relay
  with no ASGI server at all (``raw_relay.py``), the floor of any Python hop that reads HTTP, and a relay that
  parses nothing (``byte_relay.py``: the kernel moves the bytes), the floor of any hop on the machine;
- sends N GETs through the gateway with 1, 16, 64 and 256 in flight (the gateway's own client as the caller: see
  ``_calls``) and reads the CPU time the gateway process spent meanwhile (utime + stime from /proc/<pid>/stat):
  CPU per proxied request at each load, against the same figure at 1 in flight (flat = ratio 1); and the
  requests answered per second at each load.
Run: uv run python bench/bench_gateway.py [--json] [--couch pouchdb|couchdb] [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from procs import serve, serve_command
from prodflow_cli.runner import SERVICES, EmbeddedSystem, free_port_block, identity_secret
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_gateway.upstream_http import UpstreamError, UpstreamPool
from servers import add_couch_option, bench_couch

PATH = "/api/jobs?limit=10"
LOADS = (1, 16, 64, 256)
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # fields 14 and 15 of stat(5), after pid and comm


async def _calls(
    url: str, headers: dict[str, str], n: int, concurrency: int, pid: int | None = None
) -> tuple[float, float]:
    """Wall time of ``n`` GETs with ``concurrency`` in flight, and the CPU time process ``pid`` spent meanwhile.

    The caller is the gateway's own client (``UpstreamPool``, ~15 µs of CPU per call), so that the calls really
    are in flight: httpx spent ~5 ms of CPU per call at 64 in flight and, one core busy, sent ~200 calls/s (the
    gateway then saw a trickle, whatever the number of connections)."""
    pool = UpstreamPool(url, connections=concurrency, connect_timeout_s=30.0, read_timeout_s=60.0)
    head = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

    async def call() -> None:
        answer = await pool.send("GET", PATH.encode(), head)
        body = await answer.read()
        answer.release()
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {body[:300]!r}")

    try:
        await asyncio.gather(*(call() for _ in range(concurrency)))  # open every connection, build the view
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await call()

        cpu = cpu_seconds(pid) if pid else 0.0
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start, cpu_seconds(pid) - cpu if pid else 0.0
    finally:
        await pool.aclose()


async def _serial(targets: dict[str, tuple[str, dict[str, str]]], n: int) -> dict[str, float]:
    """Wall time of ``n`` GETs one at a time to each target (name: URL, headers), in turns, so that all see the
    same machine (a shared one is busier at some moments than at others)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(httpx.AsyncClient(base_url=url, headers=headers, timeout=60))
            for name, (url, headers) in targets.items()
        }
        spent = dict.fromkeys(clients, 0.0)
        for client in clients.values():
            (await client.get(PATH)).raise_for_status()  # warm the connection and the view
        for _ in range(n):
            for name, client in clients.items():
                start = time.perf_counter()
                (await client.get(PATH)).raise_for_status()
                spent[name] += time.perf_counter() - start
        return spent


PASS_THROUGH_CLIENTS = ("gateway", "aiohttp")
_FLOOR_NAMES = {"bytes": "a byte relay (splice, no HTTP)", "raw": "a raw protocol relay (no ASGI)"}
FLOORS = ("bytes", "raw", *(f"pass-through, {client} client" for client in PASS_THROUGH_CLIENTS))


@contextlib.contextmanager
def _pass_through_proxies(upstream: str, logs: Path) -> Iterator[dict[str, str]]:
    """The floor of a hop in front of ``upstream``: ``pass_through_proxy.py`` with each client,
    ``raw_relay.py`` (no ASGI server at all, as ``raw``) and ``byte_relay.py`` (no HTTP, as ``bytes``); URL by
    name."""
    here = Path(__file__).parent
    with contextlib.ExitStack() as stack:
        urls = {}
        for client in PASS_THROUGH_CLIENTS:
            env = {"PYTHONPATH": str(here), "PASS_THROUGH_UPSTREAM": upstream, "PASS_THROUGH_CLIENT": client}
            served = serve("pass_through_proxy:create_app", env, logs / f"{client}.log")
            urls[f"pass-through, {client} client"] = stack.enter_context(served).url
        raw = serve_command(lambda port: [sys.executable, str(here / "raw_relay.py"), str(port)],
                            {"RAW_RELAY_UPSTREAM": upstream}, logs / "raw.log")  # fmt: skip
        urls["raw"] = stack.enter_context(raw).url
        moved = serve_command(lambda port: [sys.executable, str(here / "byte_relay.py"), str(port)],
                              {"BYTE_RELAY_UPSTREAM": upstream}, logs / "bytes.log")  # fmt: skip
        urls["bytes"] = stack.enter_context(moved).url
        yield urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=2000)
    add_couch_option(parser)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory() as tmp, bench_couch(args.couch) as couch:
        os.environ["PRODFLOW_COUCHDB_URL"] = couch.url  # the embedded runner uses this server instead of its own
        system = EmbeddedSystem(data_dir=Path(tmp), port=free_port_block())
        try:
            system.start()
            monitor = next(s for s in SERVICES if s.name == "monitor")
            gateway_pid = system.procs["gateway"].pid
            caller = Identity("bench", frozenset({"*"}), frozenset({"admin"}))
            direct = {IDENTITY_HEADER: sign_identity(caller, identity_secret(system.data_dir), ttl_s=3600)}
            via = {"Authorization": f"Bearer {system.admin_token()}"}
            with _pass_through_proxies(system.url_of(monitor), Path(tmp) / "pass-through") as bare:
                spent = asyncio.run(_serial({
                    "direct": (system.url_of(monitor), direct), "gateway": (system.gateway_url, via),
                    **{name: (bare[name], direct) for name in FLOORS},
                }, args.n))  # fmt: skip
            base = spent["direct"]
            figures.append(
                Figure(f"{args.n} GET {PATH} via gateway, serial", spent["gateway"], "s",
                       "same GETs straight to monitor", base)
            )  # fmt: skip
            figures.append(
                Figure("added per serial call via gateway", (spent["gateway"] - base) / args.n * 1e3, "ms",
                       "a direct call", base / args.n * 1e3)
            )  # fmt: skip
            for name in FLOORS:  # the floor: a hop that does nothing but relay
                what = _FLOOR_NAMES.get(name, f"a bare {name}")
                figures.append(
                    Figure(f"  (floor) same GETs via {what}", spent[name], "s", "same GETs straight to monitor", base)
                )  # fmt: skip
            per_request: dict[int, float] = {}
            rate: dict[int, float] = {}
            for load in LOADS:
                try:
                    wall, cpu = asyncio.run(_calls(system.gateway_url, via, args.n, load, pid=gateway_pid))
                except (UpstreamError, TimeoutError, RuntimeError) as exc:
                    for name in ("gateway", "monitor"):
                        print(f"--- {name} log, end:\n{system.log_of(name).read_text()[-3000:]}", file=sys.stderr)
                    raise RuntimeError(f"{load} in flight: {exc!r}") from exc
                per_request[load], rate[load] = cpu / args.n * 1e3, args.n / wall
                figures.append(
                    Figure(
                        f"gateway CPU per request, {load} in flight",
                        per_request[load],
                        "ms",
                        "gateway CPU per request, 1 in flight",
                        per_request[1],
                    )
                )
            for load in LOADS[1:]:
                figures.append(
                    Figure(f"requests answered per second, {load} in flight", rate[load], "/s", "1 in flight", rate[1])
                )
        finally:
            system.stop()
    print_table(figures, as_json=args.json, server=couch.description)


if __name__ == "__main__":
    main()
