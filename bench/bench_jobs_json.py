"""jobs.json generation for a large request: 10,000 runs x 3 modules, checked against the catalog and expanded.

Figures (best of several runs, one process):
- check + expand + canonical bytes + SHA-256 + job count of an already-parsed request, against the baseline of a
  plain ``json.dumps`` of the very same jobs.json document (what serialising alone costs);
- the same from the raw JSON request body (pydantic parsing included), against the same baseline.
- over HTTP (ASGI, SQLite, a CouchDB-API server for the event stream): ``POST /api/requests/preview`` and
  ``POST /api/requests/{id}/approve`` (jobs.json generated, stored, mail and event queued), against the in-process
  generation from the raw body.
Run: uv run python bench/bench_jobs_json.py [--json] [--couch pouchdb|couchdb] [--runs 10000] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table, timed
from prodflow_core.identity import IDENTITY_HEADER, Identity, sign_identity
from prodflow_request_api.app import create_app
from prodflow_request_api.catalog import CatalogView, load_seed
from prodflow_request_api.jobs_file import build_jobs_file, check_request
from prodflow_request_api.schemas import RequestForm
from prodflow_request_api.settings import RequestApiSettings
from servers import add_couch_option, bench_couch

FIRST_RUN = 300000


def _body(n_runs: int) -> dict[str, Any]:
    runs = list(range(FIRST_RUN, FIRST_RUN + n_runs))
    return {
        "experiment": "snoplus",
        "title": "Tl208 and Bi214 run by run over the scintillator phase",
        "rat_v": "7.0.15",
        "label": "2026-11_bench_v1",
        "contacts": ["alice@snolab.example.org"],
        "modules": [
            {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": runs},
            {"module": "WaterN16sourceRun", "n_ev": 210000, "ev_per_run": 35000, "run_numbers": runs},
            {"module": "ScintFit_2p2Tl208", "n_ev": 40000, "run_numbers": runs, "priority": 10},
        ],
    }


def _catalog(n_runs: int) -> CatalogView:
    seed = load_seed().experiments["snoplus"]
    runs = {run: "scint_2p2_2022" for run in range(FIRST_RUN - 1000, FIRST_RUN + n_runs + 1000)}
    return CatalogView("snoplus", seed.modules, runs, tuple(seed.mailing_list))


async def _over_http(couch_url: str, body: dict[str, Any], n_runs: int, repeat: int) -> tuple[float, float]:
    """Best times of a preview and of an approval of the request, over HTTP against the running app."""
    secret = "bench-secret"  # noqa: S105 - a throw-away secret for the benchmark
    everyone = Identity("bench", frozenset({"*"}), frozenset({"admin"}))
    headers = {IDENTITY_HEADER: sign_identity(everyone, secret, ttl_s=3600)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = RequestApiSettings(
            couchdb_url=couch_url, data_dir=Path(tmp), identity_secret=secret, log_level="ERROR", follow_events=False
        )
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport, base_url="http://request-api", headers=headers, timeout=120
            ) as client,
        ):
            span = {"first": FIRST_RUN, "last": FIRST_RUN + n_runs - 1, "conditions": "scint_2p2_2022"}
            (await client.put("/api/catalog/snoplus/runs", json={"spans": [span]})).raise_for_status()
            preview = approve = float("inf")
            for attempt in range(repeat):
                start = time.perf_counter()
                answer = await client.post("/api/requests/preview", json=body)
                assert answer.status_code == 200, answer.text[:2000]
                preview = min(preview, time.perf_counter() - start)
                filed = await client.post("/api/requests", json={**body, "label": f"2026-11_bench_filed_{attempt}"})
                request_id = filed.raise_for_status().json()["id"]
                (await client.post(f"/api/requests/{request_id}/submit")).raise_for_status()
                start = time.perf_counter()
                (await client.post(f"/api/requests/{request_id}/approve")).raise_for_status()
                approve = min(approve, time.perf_counter() - start)
    return preview, approve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--no-http", action="store_true", help="skip the figures over HTTP")
    add_couch_option(parser)
    args = parser.parse_args()
    body = _body(args.runs)
    raw = json.dumps(body)
    catalog = _catalog(args.runs)
    form = RequestForm.model_validate(body)

    def generate(request: RequestForm) -> bytes:
        assert not check_request(request, catalog)
        return build_jobs_file(request, catalog, "req-000001").content

    document = build_jobs_file(form, catalog, "req-000001")
    assert document.jobs == args.runs * (1 + 6 + 4), document.jobs
    baseline = timed(lambda: json.dumps(document.document), repeat=7)
    from_body = timed(lambda: generate(RequestForm.model_validate_json(raw)), repeat=7)
    figures = [
        Figure(
            f"jobs.json {args.runs} runs x 3 modules (parsed form)",
            timed(lambda: generate(form), repeat=7),
            "s",
            "json.dumps of the same jobs.json",
            baseline,
        ),
        Figure(
            f"jobs.json {args.runs} runs x 3 modules (raw body)",
            from_body,
            "s",
            "json.dumps of the same jobs.json",
            baseline,
        ),
    ]
    server = "none (--no-http: no CouchDB used)"
    if not args.no_http:
        with bench_couch(args.couch) as running:
            server = running.description
            preview, approve = asyncio.run(_over_http(running.url, body, args.runs, repeat=3))
        figures += [
            Figure(
                f"POST preview, {args.runs} runs x 3 modules", preview, "s", "in-process, from the raw body", from_body
            ),
            Figure(
                f"POST approve, {args.runs} runs x 3 modules", approve, "s", "in-process, from the raw body", from_body
            ),
        ]
    print_table(figures, as_json=args.json, server=server)
    if not args.json:
        print(f"jobs.json: {len(document.content)} bytes, {document.jobs} jobs, sha256 {document.sha256[:16]}...")


if __name__ == "__main__":
    main()
