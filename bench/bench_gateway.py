"""Gateway overhead: an authenticated call through the gateway vs the same call straight to the service.

Starts a CouchDB-API server, a service (monitor's health) and the gateway on loopback, then times N sequential
and N concurrent GETs both ways. Run: uv run python bench/bench_gateway.py [--json] [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core.couch.server import couch_server
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.testing import serving
from prodflow_gateway.app import create_app as create_gateway
from prodflow_gateway.settings import GatewaySettings
from prodflow_monitor.app import create_app as create_monitor
from prodflow_monitor.settings import MonitorSettings

TOKEN = "pf_bench-admin"  # noqa: S105 - a throw-away token for the benchmark


async def _calls(url: str, path: str, headers: dict[str, str], n: int, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        await client.get(path)  # warm the connection
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                answer = await client.get(path)
                answer.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, couch_server(in_memory=True) as couch_url:
        data = Path(tmp)
        secret = "bench-secret"  # noqa: S105 - a throw-away secret for the benchmark
        monitor = create_monitor(
            MonitorSettings(couchdb_url=couch_url, data_dir=data, identity_secret=secret, log_level="WARNING")
        )
        with serving(monitor) as monitor_url:
            gateway = create_gateway(
                GatewaySettings(
                    couchdb_url=couch_url,
                    data_dir=data,
                    identity_secret=secret,
                    bootstrap_token=TOKEN,
                    monitor_url=monitor_url,
                    log_level="WARNING",
                )
            )
            with serving(gateway) as gateway_url:
                direct = {
                    IDENTITY_HEADER: sign_identity(
                        Identity("bench", frozenset("*"), frozenset({"admin"})), secret, ttl_s=3600
                    )
                }
                via = {"Authorization": f"Bearer {TOKEN}"}
                figures = []
                for concurrency in (1, 16):
                    base = asyncio.run(_calls(monitor_url, "/healthz", direct, args.n, concurrency))
                    through = asyncio.run(_calls(gateway_url, "/api/health/monitor", via, args.n, concurrency))
                    figures.append(
                        Figure(
                            f"{args.n} GETs via gateway, concurrency {concurrency}",
                            through,
                            "s",
                            "same GETs straight to the service",
                            base,
                        )
                    )
    print_table(figures, as_json=args.json)


if __name__ == "__main__":
    main()
