"""The monitor with 100,000 job documents in one label: kept counts, summaries, cycles, event latency (issue 12).

One run, one CouchDB-API server (``--couch``: bench/servers.py), the real ``local`` backend:
- kept counts: the monitor (its own uvicorn process, API replica: ``MONITOR_RUN_LOOP=false``, so it only keeps
  the counts from its ``_changes`` feeds) runs while N job documents are bulk-written into an empty job database;
  the time from the first write until its summary counts all N jobs (``jobs == N``), against the bulk write
  itself; the same as docs/s;
- label summary: ``GET /api/labels/{label}/summary`` through the gateway (its own process, bearer token) to the
  monitor, p50 and p99 over ``--reads`` reads one after another (goal p99 <= 50 ms); for information also
  straight to the monitor; against a direct ``label_module_status`` group query on the server (the full reduce
  of the monitor's check, as the summary used to be; median of ``--repeat``, its index built beforehand, the
  build time printed);
- one cycle while 1,000 jobs are active (queued at the backend, nothing changes): the monitor's cycle
  (``MonitorLoop`` in this process, on the same kept counts, feeds stopped), against a cycle that re-reads every
  job document and polls the active ones (the way a loop without an index works);
- one cycle in which 1,000 jobs finished at the backend: poll, move to ``transferring``, copy each output to the
  storage element with adler32, move to ``completed`` (all in that one cycle), against the same re-read baseline;
- latency from a job's end at the backend (its ``finished_at``, or the moment its backend id was recorded if that
  came later: before, no monitor can know the job) to its ``job.completed`` event arriving on the gateway's SSE
  stream, p50 and p99 over ``--latency-jobs`` jobs of 2 s each (goal p50 < 0.5 s, p99 < 2 s), against the moment
  the event was stored. Measured with N documents in the database and ``--latency-active`` more jobs active
  (submitted, queued at a one-slot site: polled every cycle, never changing), the loop and its feeds running.
Run: uv run python bench/bench_monitor.py [--json] [--couch pouchdb|couchdb] [--jobs 100000] [--active 1000]
     [--reads 200] [--latency-jobs 300] [--latency-active 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, nearest_rank, print_table
from jobgen import backend_done, job_doc, patiently, submit_locally
from monitor_latency import job_event_latency
from procs import Served, serve, stop
from prodflow_core.couch import ChangesFollower, CouchClient, CouchDatabase
from prodflow_core.counts import JobCounter, count_tables
from prodflow_core.events import EventPublisher
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.jobdocs import ACTIVE_STATUSES, backend_job_name
from prodflow_core.sql import create_tables, make_engine
from prodflow_core.testing import serving
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sharding import Shard
from prodflow_monitor.sites import SiteDirectory
from prodflow_monitor.views import label_status_counts
from servers import add_couch_option, bench_couch

SECRET = "bench-secret"  # noqa: S105 - signs identities inside this process only
LABEL = "Bench_100k"
CHUNK = 2000
TOKEN = "pf_bench-admin"  # noqa: S105 - a throw-away token of this run's gateway


def _doc(n: int, status: str, site: str) -> dict[str, Any]:
    return job_doc(n, status, site, LABEL)


def _sites_app(sites: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.get("/api/sites")
    async def get_sites() -> list[dict[str, Any]]:
        return sites

    return app


def _site(name: str, work: Path, max_running: int, se: str) -> dict[str, Any]:
    return {"name": name, "backend": "local", "storage_element": se, "max_attempts": 3, "retry_exit_codes": [],
            "options": {"work_dir": str(work / name), "output_root": str(work / "outputs"),
                        "max_running": max_running}}  # fmt: skip


async def _median(action: Callable[[], Awaitable[object]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def _reread_all(db: CouchDatabase, loop: MonitorLoop) -> tuple[float, int]:
    """Baseline cycle: read every job document in pages, then ask the backends about the active ones."""
    start = time.perf_counter()
    active: dict[str, list[str]] = {}
    read, after = 0, None
    while True:
        params: dict[str, Any] = {"include_docs": True, "limit": 5000, "endkey": "job:\ufff0"}
        params.update({"startkey": after, "skip": 1} if after else {"startkey": "job:"})
        rows = (await db.all_docs(**params)).rows
        for row in rows:
            doc = row["doc"]
            if doc.get("status") in ACTIVE_STATUSES and doc.get("backend"):
                active.setdefault(doc["site"], []).append(doc["backend"]["id"])
        read += len(rows)
        if len(rows) < 5000:
            break
        after = rows[-1]["key"]
    for site_name, ids in active.items():
        site = await loop.sites.site(site_name)
        assert site is not None
        await loop.sites.backend(site).status(ids)
    return time.perf_counter() - start, read


def _env(url: str, data_dir: Path, events_db: str) -> dict[str, str]:
    """What a service process shares with this run (the URL may carry credentials: it is never printed)."""
    return {"PRODFLOW_COUCHDB_URL": url, "PRODFLOW_DATA_DIR": str(data_dir), "PRODFLOW_IDENTITY_SECRET": SECRET,
            "PRODFLOW_EVENTS_DB": events_db, "PRODFLOW_LOG_JSON": "false",
            "PRODFLOW_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING")}  # fmt: skip


async def measure(url: str, args: argparse.Namespace) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as folder:
        return await _measure_in(Path(folder), url, args)


async def _measure_in(tmp: Path, url: str, args: argparse.Namespace) -> list[Figure]:
    n, n_active = args.jobs, args.active
    prefix = f"b{uuid.uuid4().hex[:8]}-"
    se = f"file://{tmp / 'se'}"
    sites = [_site("queued", tmp, 1, se), _site("fast", tmp, 64, se)]
    databases = (f"{prefix}data-production", f"{prefix}data-processing")
    n_final = n - 2 * n_active - args.latency_active - args.latency_jobs
    if n_final < 1:
        raise SystemExit("--jobs must exceed 2 x --active + --latency-active + --latency-jobs")
    docs = [_doc(i, "completed" if i % 10 else "failed", "fast") for i in range(n_final)]
    groups = [("queued", n_active), ("fast", n_active), ("queued", args.latency_active), ("fast", args.latency_jobs)]
    parts: list[list[dict[str, Any]]] = []
    for site_name, size in groups:
        parts.append([_doc(i, "waiting", site_name) for i in range(len(docs), len(docs) + size)])
        docs += parts[-1]
    queued, finishing, background, latency_docs = parts
    figures: list[Figure] = []
    with serving(_sites_app(sites)) as sites_url, contextlib.ExitStack() as stack:
        settings = MonitorSettings(
            couchdb_url=url, data_dir=tmp / "monitor", identity_secret=SECRET, log_json=False,
            log_level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"), databases=databases, events_db=f"{prefix}events",
            submitter_url=sites_url, cycle_s=0.5, changes_longpoll_s=5, transfer_batch=n_active, run_loop=True,
        )  # fmt: skip
        # The monitor as an API replica: it only keeps the counts (with its loop on, documents written as
        # completed would each be announced as a job.completed event: not what a real campaign does).
        monitor_env = {**_env(url, settings.data_dir, settings.events_db), "MONITOR_DATABASES": json.dumps(databases),
                       "MONITOR_SUBMITTER_URL": sites_url, "MONITOR_RUN_LOOP": "false",
                       "MONITOR_CHANGES_LONGPOLL_S": "5"}  # fmt: skip
        monitor = stack.enter_context(
            serve("prodflow_monitor.app:create_app", monitor_env, tmp / "logs" / "monitor.log")
        )
        gateway_env = {**_env(url, tmp / "gateway", settings.events_db), "GATEWAY_MONITOR_URL": monitor.url,
                       "GATEWAY_BOOTSTRAP_TOKEN": TOKEN, "GATEWAY_SSE_HEARTBEAT_S": "1"}  # fmt: skip
        gateway = stack.enter_context(
            serve("prodflow_gateway.app:create_app", gateway_env, tmp / "logs" / "gateway.log", health="/docs")
        )
        async with CouchClient(url, timeout=7200) as couch:  # PouchDB builds a 100k-doc index in minutes
            db = couch.db(databases[0])
            figures += await _counts_and_summary(db, monitor, gateway, docs, args)
            stop(monitor.proc)  # its feeds stop: the loop below takes the same kept counts over

            engine = make_engine(settings.sql_url())
            await create_tables(engine, count_tables())
            counter = JobCounter(engine, owner=f"monitor-{Shard(settings.replica_index, settings.replicas)}")
            directory = SiteDirectory(sites_url, SECRET)
            events = EventPublisher(couch.db(settings.events_db), "/services/monitor")
            loop = MonitorLoop(couch, settings, directory, events, counter)
            try:
                await loop.prepare()
                figures += await _cycles(loop, db, sites, queued, finishing, n, n_active, args.repeat)
                figures += await job_event_latency(
                    settings, couch, loop, db, sites, background, latency_docs, gateway.url, TOKEN
                )
            finally:
                await directory.aclose()
                await engine.dispose()
                for name in (*settings.databases, settings.events_db):
                    await couch.db(name).drop()
    return figures


async def _counts_and_summary(
    db: CouchDatabase, monitor: Served, gateway: Served, docs: list[dict[str, Any]], args: argparse.Namespace
) -> list[Figure]:
    """Bulk-write ``docs`` while the monitor counts them; then summaries through the gateway vs the reduce."""
    n = len(docs)
    path = f"/api/labels/{LABEL}/summary"
    header = {IDENTITY_HEADER: sign_identity(Identity("bench", frozenset({"*"}), frozenset({"reader"})),
                                             SECRET, ttl_s=36000)}  # fmt: skip
    async with (
        httpx.AsyncClient(base_url=monitor.url, headers=header, timeout=120, trust_env=False) as direct,
        httpx.AsyncClient(
            base_url=gateway.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120, trust_env=False
        ) as via,  # fmt: skip
    ):
        start = time.perf_counter()
        for offset in range(0, n, CHUNK):
            await db.bulk_docs(docs[offset : offset + CHUNK])
        write = time.perf_counter() - start
        print(f"wrote {n:,} job documents in {write:.1f} s ({n / write:,.0f} docs/s)", file=sys.stderr)
        deadline = time.monotonic() + max(600.0, 20 * write)
        while True:
            answer = await direct.get(path)
            if answer.status_code == 200 and answer.json()["jobs"] == n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the kept counts did not reach {n:,} jobs: {answer.status_code} {answer.text[:300]}"
                )
            await asyncio.sleep(0.1)
        counted = time.perf_counter() - start
        print(f"kept counts caught up {counted:.1f} s after the first write ({counted - write:.1f} s after the "
              f"last; {n / counted:,.0f} docs/s)", file=sys.stderr)  # fmt: skip

        async def timed_read(client: httpx.AsyncClient) -> float:
            began = time.perf_counter()
            answer = await client.get(path)
            took = time.perf_counter() - began
            assert answer.status_code == 200 and answer.json()["jobs"] == n, answer.text[:300]
            return took

        for _ in range(5):  # warm: connections, the gateway's token cache
            await timed_read(via)
            await timed_read(direct)
        through_gateway, straight = [], []
        for _ in range(args.reads):  # in turns: both see the same machine (CouchDB 3 may still be indexing)
            through_gateway.append(await timed_read(via))
            straight.append(await timed_read(direct))
        expected = answer.json()["counts"]
    start = time.perf_counter()
    reduced = await patiently(lambda: label_status_counts(db, LABEL))  # builds _design/monitor_verify
    print(f"label_module_status index built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    assert reduced == expected, (reduced, expected)
    reduce_s = await _median(lambda: label_status_counts(db, LABEL), args.repeat)
    reads, baseline = f"{args.reads} reads", "direct label_module_status reduce, median"
    reduce_ms = reduce_s * 1000
    percentiles = (("50", 0.5), ("99", 0.99))
    return [
        Figure(f"kept counts of {n:,} new docs caught up", counted, "s", f"_bulk_docs of the {n:,} docs", write),
        Figure(f"monitor feed counting {n:,} new docs", n / counted, "docs/s", "_bulk_docs rate", n / write),
        *(
            Figure(f"summary of {n:,}-job label via gateway p{p} ({reads})", nearest_rank(through_gateway, q) * 1000,
                   "ms", baseline, reduce_ms)
            for p, q in percentiles
        ),
        *(
            Figure(f"  (info) same, straight to monitor p{p}", nearest_rank(straight, q) * 1000, "ms", baseline,
                   reduce_ms)
            for p, q in percentiles
        ),
    ]  # fmt: skip


async def _cycles(
    loop: MonitorLoop, db: CouchDatabase, sites: list[dict[str, Any]], queued: list[dict[str, Any]],
    finishing: list[dict[str, Any]], n: int, n_active: int, repeat: int,
) -> list[Figure]:  # fmt: skip
    figures = []
    # --- a cycle with 1,000 active jobs, nothing changing (queued at a one-slot site)
    followers = loop.followers()  # driven by hand between measurements: the cycles are timed alone
    slow = await submit_locally(db, sites[0], queued, "sleep 600")
    await _feed(followers)
    await loop.resync()
    warm = await loop.cycle()  # warm: sites fetched, backend built
    assert warm.polled == len(queued), warm
    idle = await _median(loop.cycle, repeat)
    baseline, read = await _reread_all(db, loop)
    figures.append(Figure(f"cycle, {n_active:,} active of {n:,}, none changed", idle, "s",
                          f"re-read all ({read:,} docs) and poll", baseline))  # fmt: skip
    await slow.cancel([backend_job_name(d) for d in queued])
    await loop.cycle()  # the cancelled ones leave the active set before the next measurement
    await _feed(followers)

    # --- a cycle in which 1,000 jobs finished at the backend
    fast = await submit_locally(db, sites[1], finishing, "echo payload > out.root")
    await backend_done(fast, [backend_job_name(d) for d in finishing])
    await _feed(followers)
    await loop.resync()
    start = time.perf_counter()
    report = await loop.cycle()
    busy = time.perf_counter() - start
    assert report.transferred == n_active, report
    baseline, read = await _reread_all(db, loop)
    figures.append(Figure(f"cycle, {n_active:,} of {n:,} finished (moves+copies)", busy, "s",
                          f"re-read all ({read:,} docs) and poll", baseline))  # fmt: skip
    print(f"busy cycle: {report}", file=sys.stderr)
    return figures


async def _feed(followers: list[ChangesFollower]) -> None:
    """Let the feeds handle every change so far (counts, active set, events), as a running monitor would."""
    for follower in followers:
        while await follower.poll_once(wait=False):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=200, help="summary reads for p50/p99")
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--latency-active", type=int, default=1000, help="more jobs kept active during the latency")
    parser.add_argument("--repeat", type=int, default=9)
    add_couch_option(parser)
    args = parser.parse_args()
    with bench_couch(args.couch) as server:
        figures = asyncio.run(measure(server.url, args))
    print_table(figures, as_json=args.json, server=server.description)


if __name__ == "__main__":
    main()
