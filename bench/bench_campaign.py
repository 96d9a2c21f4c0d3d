"""Creating a campaign's job documents through the submitter vs writing the same documents directly (issue 12).

One run, one CouchDB-API server (``--couch``: bench/servers.py), each variant into empty databases, best of
``--repeat`` (at 1,000,000 jobs, use ``--repeat 1``):
- ``POST /api/campaigns`` of a jobs.json of N run-by-run jobs to the submitter running as its own process
  (uvicorn, loopback HTTP; validation, expansion into job documents, SQL campaign row, ``_bulk_docs`` in chunks,
  the .exactly file, the ``campaign.created`` event); the submission loop and the event follower are off, the
  job feeds (kept campaign and site counts) run as in production. Goal: <= 1.25 x baseline 1;
- baseline 1: raw ``_bulk_docs`` of the very same documents (chunks of 2,000, one after another) into a database
  holding the same design documents as the job databases (now only the monitor's check, built when asked);
- baseline 2: the same into an empty database;
- baseline 3: one ``PUT`` per document (timed on ``--put-sample`` documents, scaled to N);
- re-sending the same submission (idempotent: nothing new), against baseline 1;
- for information: the time from the POST until the submitter's kept campaign counts hold every job
  (``GET /api/campaigns/{id}``), against baseline 1;
- the submitter process's peak memory: its resident set high-water mark (``VmHWM`` in ``/proc/PID/status``,
  read once the counts caught up, so it covers the creation, the re-send and the counting), against the same
  process's at start (goal at 1,000,000 jobs: <= 1 GiB).
Run: uv run python bench/bench_campaign.py [--json] [--couch pouchdb|couchdb] [--jobs 100000] [--repeat 3]
     [--memory-only]  (only the submitter's run: its peak RSS and times, without the write baselines)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from procs import serve
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.design import sync_design_documents
from prodflow_core.couch.server import free_port
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_monitor.views import DESIGN_DOCUMENTS
from prodflow_submitter.campaigns import CampaignPlan, expand
from prodflow_submitter.schemas import JobsFile
from servers import add_couch_option, bench_couch

SECRET = "bench-secret"  # noqa: S105 - signs identities inside this process only
CHUNK = 2000


def _jobs(n: int, label: str) -> dict[str, Any]:
    runs = list(range(300000, 300000 + n))
    return {"rat_v": "7.0.15", "experiment": "snoplus", "label": label,
            "modules": [{"module": "WaterBi214Run", "n_runs": 1, "run_numbers": runs}]}  # fmt: skip


def _docs(n: int, label: str) -> list[dict[str, Any]]:
    plan = CampaignPlan(jobs=JobsFile.model_validate(_jobs(n, label)), experiment="snoplus", default_label=None,
                        database="data-production", site="local", pass_number=1, campaign_id="camp-000001")  # fmt: skip
    return expand(plan, "2026-11-25T10:00:00Z").docs


@dataclass
class SubmitterRun:
    """One submitter process: creation, counts caught up, re-send (seconds), peak and start RSS (bytes)."""

    create: float
    counted: float
    resend: float
    peak_rss: int
    start_rss: int


async def _submitter(url: str, folder: Path, n: int) -> SubmitterRun:
    prefix, events_db = f"b{uuid.uuid4().hex[:8]}-", f"events-{uuid.uuid4().hex[:8]}"
    env = {
        "PRODFLOW_COUCHDB_URL": url, "PRODFLOW_DATA_DIR": str(folder / uuid.uuid4().hex),
        "PRODFLOW_IDENTITY_SECRET": SECRET, "PRODFLOW_EVENTS_DB": events_db, "PRODFLOW_LOG_JSON": "false",
        "PRODFLOW_LOG_LEVEL": "WARNING", "SUBMITTER_JOB_DATABASE_PREFIX": prefix,
        "SUBMITTER_RUN_SUBMISSION_LOOP": "false", "SUBMITTER_FOLLOW_EVENTS": "false",
        "SUBMITTER_BULK_CHUNK": str(CHUNK), "SUBMITTER_REQUEST_API_URL": f"http://127.0.0.1:{free_port()}",
    }  # fmt: skip
    # An admin: the submission gives its own command_template (for a manager, only where the site allows it).
    identity = Identity(user="bench", experiments=frozenset({"*"}), roles=frozenset({"admin"}))
    headers = {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=36000)}
    body = {"jobs": _jobs(n, f"bench_{uuid.uuid4().hex[:8]}"), "command_template": "rat -r {run} -s {seed}"}
    with serve("prodflow_submitter.app:create_app", env, folder / "logs" / "submitter.log") as submitter:
        start_rss = submitter.peak_rss_bytes()
        async with httpx.AsyncClient(base_url=submitter.url, headers=headers, timeout=7200, trust_env=False) as http:
            start = time.perf_counter()
            response = await http.post("/api/campaigns", json=body)
            create = time.perf_counter() - start
            assert response.status_code == 201, response.text[:2000]
            made = response.json()
            assert made["jobs"] == n and made["created"] == n, made
            mib = submitter.peak_rss_bytes() / 1024 / 1024
            print(
                f"  created {n:,} in {create:.1f} s; submitter VmHWM so far {mib:.1f} MiB", file=sys.stderr, flush=True
            )
            while True:
                counts = (await http.get(f"/api/campaigns/{made['id']}")).json()["counts"]
                if sum(counts.values()) == n:
                    break
                assert time.perf_counter() - start < max(1800, 20 * create), f"counts stuck at {counts}"
                await asyncio.sleep(0.2)
            counted = time.perf_counter() - start
            start = time.perf_counter()
            response = await http.post("/api/campaigns", json=body)
            resend = time.perf_counter() - start
            assert response.status_code == 200 and response.json()["created"] == 0, response.text[:2000]
        peak_rss = submitter.peak_rss_bytes()
    async with CouchClient(url) as couch:
        for name in ("data-production", "data-processing"):
            await couch.db(prefix + name).drop()
        await couch.db(events_db).drop()
    return SubmitterRun(create, counted, resend, peak_rss, start_rss)


async def _raw_bulk(couch: CouchClient, n: int, *, designs: bool) -> float:
    docs = _docs(n, f"raw_{uuid.uuid4().hex[:8]}")
    db = couch.db(f"raw-{uuid.uuid4().hex[:8]}")
    await db.ensure()
    if designs:
        await sync_design_documents(db, DESIGN_DOCUMENTS)
    start = time.perf_counter()
    results = await db.bulk_docs(docs, chunk_size=CHUNK)
    elapsed = time.perf_counter() - start
    assert all(r.ok for r in results) and len(results) == n
    await db.drop()
    return elapsed


async def _puts(couch: CouchClient, n: int, sample: int) -> float:
    docs = _docs(min(n, sample), f"put_{uuid.uuid4().hex[:8]}")
    db = couch.db(f"put-{uuid.uuid4().hex[:8]}")
    await db.ensure()
    start = time.perf_counter()
    for doc in docs:
        await db.put(doc)
    elapsed = time.perf_counter() - start
    await db.drop()
    return elapsed * n / len(docs)


async def measure(url: str, n: int, repeat: int, put_sample: int, memory_only: bool = False) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        folder = Path(tmp)
        if memory_only:  # the submitter alone: its peak memory and times, no write baselines (1,000,000 jobs)
            run = await _submitter(url, folder, n)
            print(f"  {run}", file=sys.stderr)
            mib = 1024 * 1024
            return [
                Figure(
                    f"submitter peak RSS (VmHWM), {n:,}-job campaign",
                    run.peak_rss / mib,
                    "MiB",
                    "same process at start",
                    run.start_rss / mib,
                ),
                Figure(
                    f"  (info) POST until kept campaign counts hold {n:,}",
                    run.counted,
                    "s",
                    f"POST /api/campaigns of {n:,} jobs",
                    run.create,
                ),
            ]
        async with CouchClient(url, timeout=7200) as couch:
            await _raw_bulk(couch, 100, designs=False)  # warm up the server
            # Interleaved, so a busy moment of the machine hits every variant alike; the best of each is kept.
            raws, empties, runs = [], [], []
            for _ in range(repeat):
                raws.append(await _raw_bulk(couch, n, designs=True))
                runs.append(await _submitter(url, folder, n))
                print(f"  raw {raws[-1]:.1f} s, {runs[-1]}", file=sys.stderr)
                empties.append(await _raw_bulk(couch, n, designs=False))
            raw, empty = min(raws), min(empties)
            submitter, resend = min(r.create for r in runs), min(r.resend for r in runs)
            counted = min(r.counted for r in runs)
            peak, at_start = max(r.peak_rss for r in runs), max(r.start_rss for r in runs)
            puts = await _puts(couch, n, put_sample)
    scaled = "" if put_sample >= n else f", scaled from {put_sample}"
    title = f"campaign of {n:,} jobs via POST /api/campaigns"
    mib = 1024 * 1024
    return [
        Figure(title, submitter, "s", "raw _bulk_docs, same design docs", raw),
        Figure(title, submitter, "s", "raw _bulk_docs, empty database", empty),
        Figure(title, submitter, "s", f"one PUT per document{scaled}", puts),
        Figure(
            f"re-sending the same {n:,}-job campaign (creates nothing)",
            resend,
            "s",
            "raw _bulk_docs, same design docs",
            raw,
        ),
        Figure(
            f"  (info) POST until kept campaign counts hold {n:,}",
            counted,
            "s",
            "raw _bulk_docs, same design docs",
            raw,
        ),
        Figure(
            f"submitter peak RSS (VmHWM), {n:,}-job campaign",
            peak / mib,
            "MiB",
            "same process at start",
            at_start / mib,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--put-sample", type=int, default=2000)
    parser.add_argument("--memory-only", action="store_true", help="only the submitter: peak RSS, no write baselines")
    add_couch_option(parser)
    args = parser.parse_args()
    with bench_couch(args.couch) as server:
        figures = asyncio.run(measure(server.url, args.jobs, args.repeat, args.put_sample, args.memory_only))
    print_table(figures, as_json=args.json, server=server.description)


if __name__ == "__main__":
    main()
