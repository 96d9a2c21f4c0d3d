"""Building every index N job documents need vs the bulk write of those documents (issue 12: goal <= 3x).

No service reads a CouchDB view on its own any more: what took a label's or campaign's jobs from views
(operations, .exactly, the grabber) reads the kept counts' ledger, so the indexes N job documents need are the
two ledgers, the monitor's and the submitter's (one SQL row per document, with its indexes), each written from
that service's ``_changes`` feed. One run, one CouchDB-API server (``--couch``, bench/servers.py):
- baseline: ``_bulk_docs`` of N job documents into a new job database holding the design document the services
  keep there (documents as the services write them, 80% completed, 5% each failed, running, submitted, waiting;
  10 modules, 2 sites; chunks of 2,000, one after another);
- figure: each service's ledger rows of the N documents written in batches of 1,000 into SQLite as its feed
  does, with the indexes that service's ledger has (the monitor's with the job listings' own indexes, the
  submitter's without them); one row per service, and the sum;
- for information, not in the sum: ``_design/monitor_verify``, the one view left (the monitor's check of its kept
  counts, built only when an admin asks), queried once.
Run: uv run python bench/bench_indexes.py [--json] [--couch pouchdb|couchdb] [--jobs 100000]
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

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from jobgen import bulk_write, patiently, realistic_mix
from prodflow_core.couch import CouchClient, CouchDatabase, DesignDocument, sync_design_documents
from prodflow_core.counts import JobCounter, count_tables, keep_listing_indexes
from prodflow_core.sql import create_tables, make_engine
from prodflow_monitor.views import DESIGN_DOCUMENTS, VERIFY_DESIGN
from servers import add_couch_option, bench_couch

LEDGERS = {"monitor": True, "submitter": False}
"""The services that each keep a ledger of every job document, and whether it has the job listings' own indexes."""


async def _ledger(docs: list[dict[str, Any]], *, listing_indexes: bool) -> float:
    """Seconds to write the ledger rows of ``docs`` into a new SQLite file, 1,000 documents per transaction."""
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'ledger.sqlite'}")
        await create_tables(engine, count_tables())
        await keep_listing_indexes(engine, kept=listing_indexes)
        counter = JobCounter(engine, owner="bench")
        start = time.perf_counter()
        for offset in range(0, len(docs), 1000):
            await counter.apply("bench", [(doc["_id"], {**doc, "_rev": "1-a"}) for doc in docs[offset : offset + 1000]])
        took = time.perf_counter() - start
        await engine.dispose()
    return took


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
            await sync_design_documents(db, DESIGN_DOCUMENTS)
            docs = list(realistic_mix(n, "Bench_Indexes"))
            start = time.perf_counter()
            await bulk_write(db, docs)
            write = time.perf_counter() - start
            print(f"wrote {n:,} job documents in {write:.1f} s", file=sys.stderr)
            ledgers = {service: await _ledger(docs, listing_indexes=listed) for service, listed in LEDGERS.items()}
            del docs
            verify = await _build(db, VERIFY_DESIGN)
        finally:
            await db.drop()
    baseline = f"_bulk_docs of the {n:,} docs"
    return [
        Figure(f"every index of {n:,} jobs (two SQL ledgers)", sum(ledgers.values()), "s", baseline, write),
        *(Figure(f"  {service}'s ledger + its indexes, {n:,} jobs", took, "s", baseline, write)
          for service, took in ledgers.items()),
        Figure(f"  (info) _design/monitor_verify (built when asked), {n:,} jobs", verify, "s", baseline, write),
    ]  # fmt: skip


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
