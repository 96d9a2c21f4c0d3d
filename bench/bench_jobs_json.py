"""jobs.json generation for a large request: 10,000 runs x 3 modules, checked against the catalog and expanded.

Figures (best of several runs, one process):
- check + expand + canonical bytes + SHA-256 + job count of an already-parsed request, against the baseline of a
  plain ``json.dumps`` of the very same jobs.json document (what serialising alone costs);
- the same from the raw JSON request body (pydantic parsing included), against the same baseline.
Run: uv run python bench/bench_jobs_json.py [--json] [--runs 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table, timed
from prodflow_request_api.catalog import CatalogView, load_seed
from prodflow_request_api.jobs_file import build_jobs_file, check_request
from prodflow_request_api.schemas import RequestForm

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=10_000)
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
    figures = [
        Figure(f"jobs.json {args.runs} runs x 3 modules (parsed form)", timed(lambda: generate(form), repeat=7), "s",
               "json.dumps of the same jobs.json", baseline),
        Figure(f"jobs.json {args.runs} runs x 3 modules (raw body)",
               timed(lambda: generate(RequestForm.model_validate_json(raw)), repeat=7), "s",
               "json.dumps of the same jobs.json", baseline),
    ]  # fmt: skip
    print_table(figures, as_json=args.json)
    if not args.json:
        print(f"jobs.json: {len(document.content)} bytes, {document.jobs} jobs, sha256 {document.sha256[:16]}...")


if __name__ == "__main__":
    main()
