"""Building every index N job documents need vs the bulk write of those documents (issue 12: goal <= 3x).

One run, one CouchDB-API server (``--couch``, bench/servers.py): a new job database with the design documents
the services sync into it (``jobs``: submitter and monitor, ``monitor``: monitor, ``submitter``: submitter, and
``monitor_verify``, which monitor syncs but which is built only when an admin checks the kept counts), then:
- baseline: ``_bulk_docs`` of N job documents (chunks of 2,000, one after another; documents as the services write
  them, 80% completed, 5% each failed, running, submitted, waiting; 10 modules, 2 sites);
- figure: each view of ``jobs``, ``monitor`` and ``submitter`` queried once (``limit=1``, ``reduce=false``), one
  after another: the first query of a view waits until its index holds every document (CouchDB builds all views
  of a design document together, PouchDB Server each view on its own). One row per design document, and the sum;
- for information, not in the sum: the same for ``monitor_verify``.
Run: uv run python bench/bench_indexes.py [--json] [--couch pouchdb|couchdb] [--jobs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from jobgen import bulk_write, patiently, realistic_mix
from prodflow_core.couch import CouchClient, CouchDatabase, DesignDocument, sync_design_documents
from prodflow_core.jobdocs import JOBS_DESIGN
from prodflow_monitor.views import MONITOR_DESIGN, VERIFY_DESIGN
from prodflow_submitter.jobstore import SUBMITTER_DESIGN
from servers import add_couch_option, bench_couch

SYNCED = [JOBS_DESIGN, MONITOR_DESIGN, SUBMITTER_DESIGN]
"""Built as soon as the services read them (listings, the submitter's queue and campaign views)."""


async def _build(db: CouchDatabase, design: DesignDocument) -> float:
    """Query every view of ``design`` once; the seconds until the last answered."""
    start = time.perf_counter()
    for name, view in sorted(design.views.items()):
        params: dict[str, Any] = {"limit": 1, **({"reduce": False} if view.reduce else {})}
        await patiently(lambda: db.view(design.name, name, **params))  # noqa: B023 - awaited at once
    return time.perf_counter() - start


async def measure(url: str, n: int) -> list[Figure]:
    async with CouchClient(url, timeout=7200) as couch:
        db = couch.db(f"bench-indexes-{uuid.uuid4().hex[:8]}")
        await db.ensure()
        try:
            await sync_design_documents(db, [*SYNCED, VERIFY_DESIGN])
            docs = list(realistic_mix(n, "Bench_Indexes"))
            start = time.perf_counter()
            await bulk_write(db, docs)
            write = time.perf_counter() - start
            del docs
            print(f"wrote {n:,} job documents in {write:.1f} s", file=sys.stderr)
            figures = []
            for design in SYNCED:
                took = await _build(db, design)
                print(f"  _design/{design.name}: {len(design.views)} views in {took:.1f} s", file=sys.stderr)
                figures.append(Figure(f"  index _design/{design.name} ({len(design.views)} views), {n:,} jobs", took,
                                      "s", f"_bulk_docs of the {n:,} docs", write))  # fmt: skip
            total = sum(f.value for f in figures)
            verify = await _build(db, VERIFY_DESIGN)
        finally:
            await db.drop()
    return [
        Figure(
            f"every index of {n:,} jobs (jobs+monitor+submitter)", total, "s", f"_bulk_docs of the {n:,} docs", write
        ),
        *figures,
        Figure(f"  (info) _design/monitor_verify, {n:,} jobs", verify, "s", f"_bulk_docs of the {n:,} docs", write),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=100_000)
    add_couch_option(parser)
    args = parser.parse_args()
    with bench_couch(args.couch) as server:
        figures = asyncio.run(measure(server.url, args.jobs))
    print_table(figures, as_json=args.json, server=server.description)


if __name__ == "__main__":
    main()
