"""One provenance call at 1,000,000 jobs beside one job-document GET (issue 14).

One run of the embedded system (CouchDB-API server, every service and the gateway, each its own process):
1. a real production request is filed, approved and run (``--chain-jobs`` toy jobs on the local backend), so its
   request, approvals, campaign, job documents and output records are the services' own;
2. ``--jobs`` more job documents of the same campaign and request (each finished at its second attempt, with one
   output) are written straight into ``data-production`` with ``_bulk_docs``, and one output record per job into
   the monitor's SQL database (the rows the monitor writes when it registers an output); the monitor's kept
   counts follow the database until the label summary shows every job;
3. once the server's background index builds are done and the machine is quiet, ``--calls`` times each, in random
   order over the jobs:
   - baseline: ``GET /data-production/{job id}`` straight to the CouchDB-API server;
   - ``GET /api/jobs/{id}`` through the gateway (for information);
   - ``GET /api/provenance?url=`` and ``?name=&adler32=`` through the gateway: record → job document → campaign
     (submitter) → request (request-api), the whole chain.
Prints p50 and p99 (ms) of each and the ratios to the direct GET. Target: the provenance p99 under 100 ms.

Run: uv run python bench/bench_provenance.py [--json] [--couch pouchdb|couchdb] [--jobs 1000000] [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from jobgen import bulk_write
from procs import machine_busy_s
from prodflow_cli.runner import EmbeddedSystem
from prodflow_core import jobdocs
from prodflow_core.couch import CouchClient
from prodflow_core.events import utc_now
from prodflow_core.sql import make_engine
from prodflow_monitor.provenance.records import OutputRecords, Written
from servers import add_couch_option, embedded_on

LABEL = "Bench_Provenance"
MODULE = "BenchToyModule"
COMMAND = "head -c 1024 /dev/urandom > {output_dir}/{module}_r{run}_s{chunk}.dat"
BIG_LABEL = "Bench_Provenance_big"
Say = Callable[[str], None]


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


async def _until(check: Callable[[], Awaitable[Any]], timeout_s: float, what: str, say: Say) -> Any:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if found := await check():
            say(f"  {what}: {time.monotonic() - start:.0f} s")
            return found
        await asyncio.sleep(1.0)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")


async def run_chain(client: httpx.AsyncClient, jobs: int, say: Say) -> dict[str, Any]:
    """A request for ``jobs`` toy jobs filed, approved and completed; the request as request-api shows it."""
    module = {"description": "bench payload", "event_modes": ["run_by_run_events"], "kinds": ["production"],
              "command": COMMAND, "default_ev_per_run": 10}  # fmt: skip
    assert (await client.put(f"/api/catalog/snoplus/modules/{MODULE}", json=module)).is_success
    form = {
        "experiment": "snoplus", "title": "provenance bench", "kind": "production", "rat_v": "7.0.15",
        "modules": [{"module": MODULE, "n_ev": 10 * jobs, "ev_per_run": 10, "run_numbers": [100001]}],
        "label": LABEL, "contacts": ["bench@example.org"], "justification": "bench",
    }  # fmt: skip
    filed = await client.post("/api/requests", json=form)
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    assert (await client.post(f"/api/requests/{request_id}/submit")).is_success
    assert (await client.post(f"/api/requests/{request_id}/approve", json={"note": "bench"})).is_success

    async def completed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/api/requests/{request_id}")).json()
        return body if body["state"] == "completed" else None

    return dict(await _until(completed, 600, f"request of {jobs} jobs completed", say))


def big_label_docs(first: int, n: int, template: dict[str, Any], se: str) -> tuple[list[dict[str, Any]], list[Written]]:
    """Jobs ``first`` .. ``first + n - 1`` of one more label of the chain's campaign, each finished at its second
    attempt, and the output record of each."""
    docs, written = [], []
    at = utc_now()
    for i in range(first, first + n):
        module, run = f"Module{i % 10}", 200000 + i // 10
        doc_id = jobdocs.job_id(BIG_LABEL, module, run, 0, 1)
        name = f"{module}_r{run}_s0.dat"
        url = f"{se}/{BIG_LABEL}/{module}/{run}_0_p1/{name}"
        adler32 = f"{(i * 2654435761) & 0xFFFFFFFF:08x}"
        history = [
            {"status": "waiting", "at": at, "reason": "", "attempt": 1},
            {"status": "submitted", "at": at, "reason": "to site local", "attempt": 1},
            {"status": "failed", "at": at, "reason": "exit 3", "attempt": 1, "backend_id": f"{i}-1", "exit_code": 3},
            {"status": "waiting", "at": at, "reason": "retry 2/3: exit code 3", "attempt": 2},
            {"status": "submitted", "at": at, "reason": "to site local", "attempt": 2},
            {"status": "running", "at": at, "reason": "", "attempt": 2, "backend_id": f"{i}-2"},
            {"status": "transferring", "at": at, "reason": "", "attempt": 2, "backend_id": f"{i}-2", "exit_code": 0},
            {"status": "completed", "at": at, "reason": "1 outputs registered", "attempt": 2, "backend_id": f"{i}-2"},
        ]  # fmt: skip
        docs.append({
            **template, "_id": doc_id, "label": BIG_LABEL, "module": module, "run": run, "chunk": 0, "pass": 1,
            "attempt": 2, "seed": jobdocs.job_seed(doc_id), "status": "completed", "history": history,
            "backend": {"name": "local", "id": f"{i}-2", "state": "COMPLETED", "exit_code": 0},
            "outputs": [{"name": name, "url": url, "size": 1024, "adler32": adler32}],
            "command": f"run {module} {run}", "created_at": at, "updated_at": at,
        })  # fmt: skip
        written.append(Written("data-production", doc_id, 2, "snoplus", BIG_LABEL, name, url, 1024, adler32))
    return docs, written


async def fill(
    system: EmbeddedSystem, couch: httpx.AsyncClient, chain_doc: dict[str, Any], n: int, say: Say
) -> list[Written]:
    """Write ``n`` job documents and their output records, in slices (memory stays flat)."""
    kept = ("type", "experiment", "request_id", "campaign_id", "rat_v", "ratdb_tag", "template", "priority", "events",
            "site", "software")  # fmt: skip
    template = {k: chain_doc[k] for k in kept if k in chain_doc}
    se = chain_doc["outputs"][0]["url"].split(f"/{LABEL}/", 1)[0]
    engine = make_engine(f"sqlite+aiosqlite:///{(system.data_dir / 'monitor.sqlite').resolve()}")
    records = OutputRecords(engine)
    picked: list[Written] = []
    start = time.monotonic()
    async with CouchClient(str(couch.base_url), timeout=7200) as client:
        db = client.db("data-production")
        step = 50_000
        for offset in range(0, n, step):
            docs, written = big_label_docs(offset, min(step, n - offset), template, se)
            await bulk_write(db, docs, chunk=5000)
            await records.write(written, utc_now())
            picked += random.sample(written, min(len(written), 200))
            say(f"  {offset + len(docs):,} jobs written ({time.monotonic() - start:.0f} s)")
    await engine.dispose()
    return picked


async def _quiet(couch: httpx.AsyncClient) -> bool:
    """True when the server runs no indexer task (CouchDB 3 builds every view in the background after writes:
    measured during such a build, every read waits for the CPU it takes)."""
    tasks = await couch.get("/_active_tasks")
    return not tasks.is_success or not any(task.get("type") == "indexer" for task in tasks.json())


async def _machine_quiet() -> bool:
    """True when every process together used under a tenth of a core over 5 s (followers, compactions done)."""
    before = machine_busy_s()
    await asyncio.sleep(5.0)
    return machine_busy_s() - before < 0.5


async def _timed(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    start = time.perf_counter()
    response = await call()
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return elapsed


async def measure(system: EmbeddedSystem, couch_url: str, args: argparse.Namespace, say: Say) -> list[Figure]:
    token = system.admin_token()
    assert token, "the embedded system wrote no admin token"
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=system.gateway_url, headers=headers, timeout=300, trust_env=False) as api,
        httpx.AsyncClient(base_url=couch_url, timeout=300, trust_env=False) as couch,
    ):
        request = await run_chain(api, args.chain_jobs, say)
        first = (await api.get("/api/jobs", params={"label": LABEL, "limit": "1"})).json()["items"][0]
        chain_doc = (await api.get(f"/api/jobs/{first['_id']}")).json()
        assert chain_doc["request_id"] == request["id"]
        picked = await fill(system, couch, chain_doc, args.jobs, say)

        async def counted() -> bool:
            summary = await api.get(f"/api/labels/{BIG_LABEL}/summary")
            return summary.is_success and summary.json().get("jobs") == args.jobs

        await _until(counted, 3600, f"the monitor's counts show all {args.jobs:,} jobs", say)
        await _until(lambda: _quiet(couch), 3600, "CouchDB's background index builds over the new jobs done", say)
        await _until(_machine_quiet, 1800, "the machine quiet (under 10 % of one core for 5 s)", say)
        sample = random.sample(picked, min(args.calls, len(picked)))
        kinds: dict[str, Callable[[Written], Callable[[], Awaitable[httpx.Response]]]] = {
            "direct": lambda w: lambda: couch.get(f"/data-production/{quote(w.job_id, safe='')}"),
            "job": lambda w: lambda: api.get(f"/api/jobs/{w.job_id}"),
            "url": lambda w: lambda: api.get("/api/provenance", params={"url": w.url}),
            "file": lambda w: lambda: api.get("/api/provenance", params={"name": w.name, "adler32": w.adler32}),
        }
        answer = (await api.get("/api/provenance", params={"url": sample[0].url})).json()
        assert answer["job_output"]["request"]["approved_by"] == "admin", answer
        assert len(answer["job_output"]["job"]["attempts"]) == 2, answer
        for kind in kinds:  # warm each path's connections
            await _timed(kinds[kind](sample[0]))
        times: dict[str, list[float]] = {kind: [] for kind in kinds}
        for written in sample:
            for kind in random.sample(list(kinds), len(kinds)):
                times[kind].append(await _timed(kinds[kind](written)))
    direct = _quantiles(times["direct"])
    say("  p50/p99 ms: " + ", ".join(f"{k} {_quantiles(v)[0]:.1f}/{_quantiles(v)[1]:.1f}" for k, v in times.items()))
    figures = []
    for kind, what in (
        ("url", "provenance by url"),
        ("file", "provenance by name+adler32"),
        ("job", "GET /api/jobs/{id}"),
    ):
        p50, p99 = _quantiles(times[kind])
        figures.append(
            Figure(f"{what} at {args.jobs:,} jobs, p50", p50, "ms", "direct job-document GET, p50", direct[0])
        )
        figures.append(
            Figure(f"{what} at {args.jobs:,} jobs, p99", p99, "ms", "direct job-document GET, p99", direct[1])
        )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="job documents of the big label")
    parser.add_argument("--chain-jobs", type=int, default=4, help="toy jobs the real request runs")
    parser.add_argument("--calls", type=int, default=500, help="calls of each kind")
    parser.add_argument("--json", action="store_true", help="Figure lines on stdout, the rest on stderr")
    add_couch_option(parser)
    args = parser.parse_args()

    def say(line: str) -> None:
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    work = Path(tempfile.mkdtemp(prefix="prodflow-provenance-"))
    try:
        with embedded_on(args.couch, work) as (system, server):
            couch_url = system.couch.url if system.couch is not None else os.environ["PRODFLOW_COUCHDB_URL"]
            say(f"CouchDB-API server: {server}")
            figures = asyncio.run(measure(system, couch_url, args, say))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(figures, as_json=args.json, server=server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
