"""Gateway overhead: an authenticated call through the gateway vs the same call straight to the service.

Starts the whole system with the embedded runner (every service its own process, as in production), then times
N GETs of the monitor's job list (`/api/jobs?limit=10`) sequentially and with 16 in flight, both ways.
Run: uv run python bench/bench_gateway.py [--json] [--n 2000]
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
from prodflow_cli.runner import SERVICES, EmbeddedSystem, free_port_block, identity_secret
from prodflow_core.couch.server import free_port
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity

PATH = "/api/jobs?limit=10"


async def _calls(url: str, headers: dict[str, str], n: int, concurrency: int) -> float:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        (await client.get(PATH)).raise_for_status()  # warm the connection and the view
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                (await client.get(PATH)).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        system = EmbeddedSystem(data_dir=Path(tmp), port=free_port_block(), couch_port=free_port())
        try:
            system.start()
            monitor = next(s for s in SERVICES if s.name == "monitor")
            caller = Identity("bench", frozenset({"*"}), frozenset({"admin"}))
            direct = {IDENTITY_HEADER: sign_identity(caller, identity_secret(system.data_dir), ttl_s=3600)}
            via = {"Authorization": f"Bearer {system.admin_token()}"}
            for concurrency in (1, 16):
                base = asyncio.run(_calls(system.url_of(monitor), direct, args.n, concurrency))
                through = asyncio.run(_calls(system.gateway_url, via, args.n, concurrency))
                figures.append(
                    Figure(
                        f"{args.n} GET {PATH} via gateway, {concurrency} in flight",
                        through,
                        "s",
                        "same GETs straight to the monitor",
                        base,
                    )
                )
        finally:
            system.stop()
    print_table(figures, as_json=args.json)


if __name__ == "__main__":
    main()
