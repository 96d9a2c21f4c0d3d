"""Creating a campaign's job documents through the submitter vs writing the same documents directly.

One run, one CouchDB-API server (PouchDB Server, in memory, unless PRODFLOW_COUCHDB_URL names another), each
variant into empty databases, best of ``--repeat``:
- ``POST /api/campaigns`` of a jobs.json of N run-by-run jobs (in process over ASGI: validation, expansion into
  job documents, SQL campaign row, ``_bulk_docs`` in chunks, the .exactly file, the ``campaign.created`` event);
  the submission loop and the event follower are off, so only the creation is timed;
- baseline 1: raw ``_bulk_docs`` of the very same documents (chunks of 2,000, one after another) into a database
  holding the same design documents as the job databases (PouchDB Server writes slower into such a database);
- baseline 2: the same into an empty database;
- baseline 3: one ``PUT`` per document (timed on ``--put-sample`` documents, scaled to N);
- re-sending the same submission (idempotent: nothing new), against baseline 1.
Run: uv run python bench/bench_campaign.py [--json] [--jobs 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core.couch.client import CouchClient
from prodflow_core.couch.design import sync_design_documents
from prodflow_core.couch.server import couch_server
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_core.jobdocs import JOBS_DESIGN
from prodflow_submitter.app import create_app
from prodflow_submitter.campaigns import CampaignPlan, expand
from prodflow_submitter.jobstore import SUBMITTER_DESIGN
from prodflow_submitter.schemas import JobsFile
from prodflow_submitter.settings import SubmitterSettings

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


async def _submitter(url: str, folder: Path, n: int, resend: bool) -> float:
    settings = SubmitterSettings(
        couchdb_url=url, data_dir=folder / uuid.uuid4().hex, identity_secret=SECRET, log_json=False,
        log_level="WARNING",
        job_database_prefix=f"b{uuid.uuid4().hex[:8]}-", events_db=f"events-{uuid.uuid4().hex[:8]}",
        run_submission_loop=False, follow_events=False, bulk_chunk=CHUNK,
    )  # fmt: skip
    identity = Identity(user="bench", experiments=frozenset({"*"}), roles=frozenset({"manager"}))
    headers = {IDENTITY_HEADER: sign_identity(identity, SECRET, ttl_s=3600)}
    body = {"jobs": _jobs(n, f"bench_{uuid.uuid4().hex[:8]}"), "command_template": "rat -r {run} -s {seed}"}
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        if resend:
            assert (await client.post("/api/campaigns", json=body, headers=headers, timeout=600)).status_code == 201
        start = time.perf_counter()
        response = await client.post("/api/campaigns", json=body, headers=headers, timeout=600)
        elapsed = time.perf_counter() - start
        assert response.status_code == (200 if resend else 201), response.text
        assert response.json()["jobs"] == n and response.json()["created"] == (0 if resend else n)
        async with CouchClient(url) as couch:
            for name in ("data-production", "data-processing"):
                await couch.db(settings.job_database_prefix + name).drop()
            await couch.db(settings.events_db).drop()
    return elapsed


async def _raw_bulk(couch: CouchClient, n: int, *, designs: bool) -> float:
    docs = _docs(n, f"raw_{uuid.uuid4().hex[:8]}")
    db = couch.db(f"raw-{uuid.uuid4().hex[:8]}")
    await db.ensure()
    if designs:
        await sync_design_documents(db, [JOBS_DESIGN, SUBMITTER_DESIGN])
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


async def measure(url: str, n: int, repeat: int, put_sample: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        folder = Path(tmp)
        async with CouchClient(url) as couch:
            await _raw_bulk(couch, 100, designs=False)  # warm up the server
            # Interleaved, so a busy moment of the machine hits every variant alike; the best of each is kept.
            raws, empties, submitters, resends = [], [], [], []
            for _ in range(repeat):
                raws.append(await _raw_bulk(couch, n, designs=True))
                submitters.append(await _submitter(url, folder, n, resend=False))
                empties.append(await _raw_bulk(couch, n, designs=False))
                resends.append(await _submitter(url, folder, n, resend=True))
            raw, empty, submitter, resend = min(raws), min(empties), min(submitters), min(resends)
            puts = await _puts(couch, n, put_sample)
    scaled = "" if put_sample >= n else f", scaled from {put_sample}"
    title = f"campaign of {n:,} jobs via POST /api/campaigns"
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
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--put-sample", type=int, default=2000)
    args = parser.parse_args()
    with couch_server(in_memory=True) as url:
        figures = asyncio.run(measure(url, args.jobs, args.repeat, args.put_sample))
    print_table(figures, as_json=args.json)


if __name__ == "__main__":
    main()
