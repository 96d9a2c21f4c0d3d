"""The monitor with 100,000 job documents in one label: summaries, cycles, event latency.

One run, one CouchDB-API server (PouchDB Server, in memory, unless PRODFLOW_COUCHDB_URL names another), the real
``local`` backend, and the monitor's own loop and app:
- label summary: ``GET /api/labels/{label}/summary`` (in process over ASGI; reduce views only) against a direct
  ``by_label_status`` group query on CouchDB (median of ``--repeat``, indexes built beforehand);
- one cycle while 1,000 jobs are active (queued at the backend, nothing changes): the monitor's cycle, against a
  cycle that re-reads every job document and polls the active ones (the way a loop without an index works);
- one cycle in which 1,000 jobs finished at the backend: poll, move to ``transferring``, copy each output to the
  storage element with adler32, move to ``completed`` (all in that one cycle), against the same re-read baseline;
- latency from a job's end at the backend (its ``finished_at``, or the moment its backend id was recorded if that
  came later: before, no monitor can know the job) to its ``job.completed`` event arriving on the gateway's SSE
  stream, p50 and p99 over ``--latency-jobs`` jobs of 2 s each, against the moment the event was stored.
Run: uv run python bench/bench_monitor.py [--json] [--jobs 100000] [--active 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core.backends import BackendJob, BackendStatus, LocalBackend
from prodflow_core.couch import CouchClient, CouchDatabase
from prodflow_core.couch.server import couch_server
from prodflow_core.events import EventPublisher, utc_now
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.jobdocs import ACTIVE_STATUSES, backend_job_name, job_id, job_output_dir, job_seed
from prodflow_core.testing import serving
from prodflow_monitor.app import create_app
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sites import SiteDirectory
from prodflow_monitor.views import label_status_counts

SECRET = "bench-secret"  # noqa: S105 - signs identities inside this process only
LABEL = "Bench_100k"
MODULES = [f"Module{i}" for i in range(10)]
CHUNK = 2000


def _doc(n: int, status: str, site: str) -> dict[str, Any]:
    module, run = MODULES[n % len(MODULES)], 100000 + n // len(MODULES)
    doc_id = job_id(LABEL, module, run, 0, 1)
    at = utc_now()
    return {
        "_id": doc_id, "type": "job", "experiment": "snoplus", "label": LABEL, "module": module, "run": run,
        "chunk": 0, "pass": 1, "attempt": 1, "events": 1000, "seed": job_seed(doc_id), "site": site,
        "backend": None, "status": status, "outputs": [], "history": [{"status": status, "at": at, "reason": ""}],
        "created_at": at, "updated_at": at,
    }  # fmt: skip


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


async def _submit(db: CouchDatabase, site: dict[str, Any], docs: list[dict[str, Any]], command: str) -> LocalBackend:
    """Hand ``docs`` to the site's local backend and record them ``submitted`` (submitter's two steps)."""
    backend = LocalBackend.from_options(site["options"])
    root = Path(site["options"]["output_root"])
    jobs = [
        BackendJob(name=backend_job_name(d), command=command, output_dir=job_output_dir(root, d["_id"])) for d in docs
    ]
    ids = await backend.submit(jobs)
    current = await db.get_many([d["_id"] for d in docs])
    at = utc_now()
    moved = []
    for doc, backend_id in zip(docs, ids, strict=True):
        fresh = current[doc["_id"]]
        moved.append({**fresh, "status": "submitted", "updated_at": at,
                      "backend": {"name": "local", "id": backend_id, "state": "PENDING", "checked_at": at},
                      "history": [*fresh["history"], {"status": "submitted", "at": at, "reason": ""}]})  # fmt: skip
    await db.bulk_docs(moved)
    return backend


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


async def _backend_done(backend: LocalBackend, ids: list[str], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = await backend.status(ids)
        if all(s.state == BackendStatus.COMPLETED for s in states.values()):
            return
        assert time.monotonic() < deadline, "the backend did not finish the jobs"
        await asyncio.sleep(1.0)


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _follow_sse(url: str, token: str, since: str, wanted: int, arrivals: dict[str, float], ready: Any) -> None:
    params = {"since": since, "types": "job.completed"}
    auth = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=url, headers=auth, timeout=120) as client,
        client.stream("GET", "/api/events", params=params) as stream,
    ):
        ready.set()
        for line in stream.iter_lines():
            if line.startswith("data: "):
                now = time.time()
                for doc_id in json.loads(line[6:])["data"]["job_ids"]:
                    arrivals.setdefault(doc_id, now)
                if len(arrivals) >= wanted:
                    return


async def measure(url: str, n: int, n_active: int, n_latency: int, repeat: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as folder:
        return await _measure_in(Path(folder), url, n, n_active, n_latency, repeat)


async def _measure_in(tmp: Path, url: str, n: int, n_active: int, n_latency: int, repeat: int) -> list[Figure]:
    prefix = f"b{uuid.uuid4().hex[:8]}-"
    se = f"file://{tmp / 'se'}"
    sites = [_site("queued", tmp, 1, se), _site("fast", tmp, 64, se)]
    figures: list[Figure] = []
    with serving(_sites_app(sites)) as sites_url:
        settings = MonitorSettings(
            couchdb_url=url, data_dir=tmp, identity_secret=SECRET, log_json=False,
            log_level=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            databases=(f"{prefix}data-production", f"{prefix}data-processing"), events_db=f"{prefix}events",
            submitter_url=sites_url, cycle_s=0.5, changes_longpoll_s=5, transfer_batch=n_active, run_loop=False,
            summary_ttl_s=0,  # every summary read computed anew: the figure is the reduce, not a reuse
        )  # fmt: skip
        async with CouchClient(url, timeout=1800) as couch:  # PouchDB builds a 100k-doc index in minutes
            events_db = couch.db(settings.events_db)
            await events_db.ensure()
            directory = SiteDirectory(sites_url, SECRET)
            loop = MonitorLoop(couch, settings, directory, EventPublisher(events_db, "/services/monitor"))
            await loop.prepare()
            db = loop.dbs[settings.databases[0]]
            n_final = n - 2 * n_active - n_latency
            docs = [_doc(i, "completed" if i % 10 else "failed", "fast") for i in range(n_final)]
            docs += [_doc(i, "waiting", "queued") for i in range(n_final, n_final + n_active)]
            docs += [_doc(i, "waiting", "fast") for i in range(n_final + n_active, n)]
            start = time.perf_counter()
            for offset in range(0, len(docs), CHUNK):
                await db.bulk_docs(docs[offset : offset + CHUNK])
            print(f"wrote {n:,} job documents in {time.perf_counter() - start:.1f} s", file=sys.stderr)
            start = time.perf_counter()
            for design, view in (("jobs", "by_label_status"), ("monitor", "label_module_status"),
                                 ("jobs", "by_status")):  # fmt: skip
                await db.view(design, view, limit=1)
            print(f"built the indexes in {time.perf_counter() - start:.1f} s", file=sys.stderr)

            # --- summary through the API vs a direct view query
            app = create_app(settings)
            header = {IDENTITY_HEADER: sign_identity(Identity("bench", frozenset({"*"}), frozenset({"reader"})),
                                                     SECRET, ttl_s=3600)}  # fmt: skip
            transport = httpx.ASGITransport(app=app)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://m", headers=header) as client,
            ):
                summary = (await client.get(f"/api/labels/{LABEL}/summary")).json()
                assert summary["jobs"] == n, summary
                api = await _median(lambda: client.get(f"/api/labels/{LABEL}/summary"), repeat)
            direct = await _median(lambda: label_status_counts(db, LABEL), repeat)
            figures.append(Figure(f"summary of a {n:,}-job label via the API", api * 1000, "ms",
                                  "direct by_label_status view query", direct * 1000))  # fmt: skip

            # --- a cycle with 1,000 active jobs, nothing changing (queued at a one-slot site)
            queued = docs[n_final : n_final + n_active]
            slow = await _submit(db, sites[0], queued, "sleep 600")
            await loop.resync()
            await loop.cycle()  # warm: sites fetched, backend built
            idle = await _median(loop.cycle, repeat)
            baseline, read = await _reread_all(db, loop)
            figures.append(Figure(f"cycle, {n_active:,} active of {n:,}, none changed", idle, "s",
                                  f"re-read all ({read:,} docs) and poll", baseline))  # fmt: skip
            await slow.cancel([backend_job_name(d) for d in queued])
            await loop.cycle()  # the cancelled ones leave the active set before the next measurement

            # --- a cycle in which 1,000 jobs finished at the backend
            finishing = docs[n_final + n_active : n_final + 2 * n_active]
            fast = await _submit(db, sites[1], finishing, "echo payload > out.root")
            await _backend_done(fast, [backend_job_name(d) for d in finishing])
            await loop.resync()
            start = time.perf_counter()
            report = await loop.cycle()
            busy = time.perf_counter() - start
            assert report.transferred == n_active, report
            baseline, read = await _reread_all(db, loop)
            figures.append(Figure(f"cycle, {n_active:,} of {n:,} finished (moves+copies)", busy, "s",
                                  f"re-read all ({read:,} docs) and poll", baseline))  # fmt: skip
            print(f"busy cycle: {report}", file=sys.stderr)

            # --- latency from the backend's end of a job to its job.completed on the gateway's SSE stream
            figures += await _latency(settings, couch, loop, db, fast, sites, docs[n - n_latency :], url)
            await directory.aclose()
            for name in (*settings.databases, settings.events_db):
                await couch.db(name).drop()
    return figures


async def _latency(
    settings: MonitorSettings, couch: CouchClient, loop: MonitorLoop, db: CouchDatabase, backend: LocalBackend,
    sites: list[dict[str, Any]], docs: list[dict[str, Any]], url: str,
) -> list[Figure]:  # fmt: skip
    from prodflow_gateway.app import create_app as create_gateway
    from prodflow_gateway.settings import GatewaySettings

    token = "pf_bench-admin"  # noqa: S105 - a throw-away token of this run's gateway
    gateway = GatewaySettings(couchdb_url=url, data_dir=settings.data_dir / "gateway", log_json=False,
                              log_level="WARNING", events_db=settings.events_db, bootstrap_token=token,
                              sse_heartbeat_s=1.0)  # fmt: skip
    since = await couch.db(settings.events_db).update_seq()
    arrivals: dict[str, float] = {}
    stop = asyncio.Event()
    with serving(create_gateway(gateway)) as gateway_url:
        ready = threading.Event()
        reader = threading.Thread(target=_follow_sse, args=(gateway_url, token, since, len(docs), arrivals, ready))
        reader.start()
        await asyncio.to_thread(ready.wait, 30)
        followers = loop.followers()
        for follower in followers:  # a monitor starting now: the bulk-loaded history is not its to replay
            await follower.save_checkpoint(await follower.db.update_seq())
        tasks = [asyncio.create_task(f.run(stop)) for f in followers]
        tasks.append(asyncio.create_task(loop.run(stop)))
        await _submit(db, sites[1], docs, "sleep 2; echo payload > out.root")
        recorded = time.time()  # the monitor can know a job only once submitter recorded its backend id
        await asyncio.to_thread(reader.join, 300)
        stop.set()
        await asyncio.gather(*tasks)
    states = await backend.status([backend_job_name(d) for d in docs])
    finished = {name.rsplit(":a", 1)[0]: max(recorded, _seconds(s.finished_at or "")) for name, s in states.items()}
    rows = (await couch.db(settings.events_db).all_docs(include_docs=True)).rows
    stored: dict[str, float] = {}
    for row in rows:
        if row["doc"].get("type") == "org.prodflow.job.completed":
            for doc_id in row["doc"]["data"]["job_ids"]:
                stored.setdefault(doc_id, _seconds(row["doc"]["time"]))
    sse = sorted(arrivals[d["_id"]] - finished[d["_id"]] for d in docs)
    store = sorted(stored[d["_id"]] - finished[d["_id"]] for d in docs)

    def pct(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))]

    n = len(docs)
    return [
        Figure(f"job end -> SSE job.completed p{p} ({n} jobs)", pct(sse, q), "s", f"event stored p{p}", pct(store, q))
        for p, q in (("50", 0.5), ("99", 0.99))
    ]


def _run(url: str, args: argparse.Namespace) -> list[Figure]:
    return asyncio.run(measure(url, args.jobs, args.active, args.latency_jobs, args.repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with couch_server(in_memory=True) as url:
        figures = _run(url, args)
    print_table(figures, as_json=args.json)


if __name__ == "__main__":
    main()
