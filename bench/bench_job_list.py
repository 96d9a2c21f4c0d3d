"""A job list's cost with the documents the monitor holds as followed, against the same system holding none.

Starts the embedded system twice on the same kind of server: first with ``MONITOR_FOLLOWED_DOCS=0`` (every page
read from CouchDB with ``_all_docs?keys=``: the baseline), then with the default. Each time a ``--jobs``-job
campaign is filed to a drained local site, and once every job is counted, ``--n`` GETs of
``/api/jobs?label=...&limit=50`` are sent one at a time straight to the monitor. Prints per call: the wall time
(p50) and the CPU the whole machine, the monitor and the CouchDB-API server spent.

Run: uv run python bench/bench_job_list.py [--json] [--couch pouchdb|couchdb] [--jobs 2000] [--n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from load import LABEL, set_up
from procs import cpu_snapshot, system_cpu_groups
from prodflow_cli.runner import SERVICES, identity_secret
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from servers import add_couch_option, embedded_on

PARAMS = {"label": LABEL, "limit": "50"}


async def _list_calls(url: str, headers: dict[str, str], n: int) -> list[float]:
    """Wall times of ``n`` job lists, one at a time (after one warm-up call)."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        (await client.get("/api/jobs", params=PARAMS)).raise_for_status()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            answer = await client.get("/api/jobs", params=PARAMS)
            times.append(time.perf_counter() - start)
            answer.raise_for_status()
            assert answer.json()["count"] == 50, answer.text[:300]
        return times


def measure(kind: str, followed: int, jobs: int, n: int) -> tuple[dict[str, float], str]:
    """One system holding up to ``followed`` documents: p50 wall time and CPU per call (ms); the server."""
    os.environ["MONITOR_FOLLOWED_DOCS"] = str(followed)
    with (
        tempfile.TemporaryDirectory(prefix="prodflow-job-list-") as tmp,
        embedded_on(kind, Path(tmp)) as (system, server),
    ):
        admin = {"Authorization": f"Bearer {system.admin_token()}"}

        async def prepare() -> None:
            async with httpx.AsyncClient(base_url=system.gateway_url, headers=admin, timeout=600) as client:
                await set_up(client, Path(tmp), jobs, lambda line: print(line, file=sys.stderr), None)

        asyncio.run(prepare())
        caller = Identity("bench", frozenset({"*"}), frozenset({"admin"}))
        signed = {IDENTITY_HEADER: sign_identity(caller, identity_secret(system.data_dir), ttl_s=3600)}
        monitor = system.url_of(next(service for service in SERVICES if service.name == "monitor"))
        groups = system_cpu_groups(system.procs)
        before = cpu_snapshot(groups)
        times = asyncio.run(_list_calls(monitor, signed, n))
        after = cpu_snapshot(groups)
    per_call = {name: 1000 * (after[name] - before[name]) / n for name in ("machine", "monitor", "CouchDB-API server")}
    return {"p50": 1000 * statistics.median(times), **per_call}, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--n", type=int, default=1000)
    add_couch_option(parser)
    args = parser.parse_args()
    none_held, _ = measure(args.couch, 0, args.jobs, args.n)
    held, server = measure(args.couch, 50_000, args.jobs, args.n)
    for name in ("p50", "machine", "monitor", "CouchDB-API server"):
        what = "wall time, p50" if name == "p50" else f"CPU of the {name}"
        print(f"per job list, {what}: {none_held[name]:.2f} -> {held[name]:.2f} ms", file=sys.stderr)
    baseline = "same system, no documents held"
    figures = [
        Figure(f"job list of 50 ({args.jobs:,} jobs), p50", held["p50"], "ms", baseline, none_held["p50"]),
        Figure("job list of 50, CPU of the machine per call", held["machine"], "ms", baseline, none_held["machine"]),
    ]
    print_table(figures, as_json=args.json, server=server)


if __name__ == "__main__":
    main()
