"""Reads of the kept counts with many labels in them vs with few (issue 12: a read costs O(modules x statuses)).

The kept counts of a service that has watched many labels hold rows of every one; a read about one label, one
campaign or the whole database must not grow with them. One SQLite counts database (the services' default) per
size, filled as the monitor's feed fills it (``JobCounter.apply``, batches of 5,000) with ``--labels`` labels of
10 modules, one job in each of 5 statuses per module, one campaign per label; then, each read ``--reads`` times:
- the monitor's summary read of one label (``counts_and_archival``, behind ``GET /api/labels/{label}/summary``);
- a campaign's counts (``campaign_counts``, behind ``GET /api/campaigns/{id}``);
- the ``/metrics`` job gauges (``database_status_counts``: jobs by database and status);
- the first page of 100 labels of ``GET /api/labels`` (``label_page``);
each against the same read with 100 labels in the counts (ratio 1: it does not grow with the labels), in turns,
``ROUNDS`` times, the lowest median of each. For information, what ``/metrics`` and ``GET /api/labels`` read
before (the sum of every label's counts; every label at once), against their reads now.
Run: uv run python bench/bench_count_reads.py [--json] [--labels 2000] [--reads 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, print_table
from prodflow_core.counts import JobCounter, campaign_counts, count_tables, database_status_counts
from prodflow_core.sql import create_tables, make_engine
from prodflow_monitor.archive.tables import archive_tables
from prodflow_monitor.summary import counts_and_archival, label_page

STATUSES = ("completed", "failed", "running", "waiting", "submitted")
MODULES = 10
FEW = 100
PAGE = 100
ROUNDS = 3
SUM_OF_LABELS = text("SELECT database, status, SUM(jobs) FROM label_count GROUP BY database, status")
"""What ``/metrics`` read before the kept totals: every label's counts, summed."""
EVERY_LABEL = text(
    "SELECT database, experiment, label, status, SUM(jobs) FROM label_count WHERE experiment = 'snoplus' "
    "GROUP BY database, experiment, label, status"
)
"""What ``GET /api/labels`` read before its pages: every label's counts at once."""


def _label_docs(label: str, campaign: str) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for module in range(MODULES):
        for run, status in enumerate(STATUSES):
            doc_id = f"job:{label}:M{module}:{run}:0:p1"
            docs.append((doc_id, {"_id": doc_id, "_rev": "1-a", "type": "job", "experiment": "snoplus",
                                  "label": label, "module": f"M{module}", "status": status, "site": "local",
                                  "campaign_id": campaign, "events": 1}))  # fmt: skip
    return docs


async def _filled(folder: Path, labels: int) -> AsyncEngine:
    engine = make_engine(f"sqlite:///{folder / f'counts-{labels}.sqlite'}")
    await create_tables(engine, [*count_tables(), *archive_tables()])
    counter = JobCounter(engine, "monitor-0")
    docs = [doc for n in range(labels) for doc in _label_docs(f"L{n:06d}", f"camp-{n:06d}")]
    for start in range(0, len(docs), 5000):
        await counter.apply("data-production", docs[start : start + 5000])
    return engine


async def _median_ms(read: Callable[[int], Awaitable[object]], reads: int) -> float:
    times = []
    for n in range(reads):
        start = time.perf_counter()
        await read(n)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


METRICS, PAGE_READ = "/metrics job gauges (kept totals)", f"the first page of {PAGE} labels (GET /api/labels)"
METRICS_BEFORE, LABELS_BEFORE = "sum of every label's counts (/metrics before)", "every label at once (before)"
BEFORE = {METRICS_BEFORE: METRICS, LABELS_BEFORE: PAGE_READ}
"""Each read that a read now replaced, and that read."""


def _reads(engine: AsyncEngine, labels: int) -> dict[str, Callable[[int], Awaitable[object]]]:
    """Each read, of a different label or campaign each time (the ``n``-th of ``labels``, spread out)."""

    async def every(statement: Any) -> object:
        async with engine.connect() as conn:
            return (await conn.execute(statement)).all()

    return {
        "summary read of one label": lambda n: counts_and_archival(engine, f"L{n * 7919 % labels:06d}"),
        "a campaign's counts": lambda n: campaign_counts(engine, f"camp-{n * 7919 % labels:06d}"),
        METRICS: lambda _n: database_status_counts(engine),
        PAGE_READ: lambda _n: label_page(engine, ["data-production"], ["snoplus"], limit=PAGE),
        METRICS_BEFORE: lambda _n: every(SUM_OF_LABELS),
        LABELS_BEFORE: lambda _n: every(EVERY_LABEL),
    }


async def measure(labels: int, reads: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-count-reads-") as tmp:
        few, many = await _filled(Path(tmp), FEW), await _filled(Path(tmp), labels)
        try:  # in turns, the lower median of each: a read is ~0.1-0.5 ms, so a busy moment shows
            few_ms: dict[str, float] = {}
            many_ms: dict[str, float] = {}
            for _ in range(ROUNDS):
                for engine, count, into in ((few, FEW, few_ms), (many, labels, many_ms)):
                    for name, read in _reads(engine, count).items():
                        into[name] = min(into.get(name, float("inf")), await _median_ms(read, reads))
        finally:
            await few.dispose()
            await many.dispose()
    rows = labels * MODULES * len(STATUSES)
    figures = [
        Figure(f"{name}, {labels:,} labels ({rows:,} count rows), p50", ms, "ms", f"the same, {FEW} labels",
               few_ms[name])
        for name, ms in many_ms.items() if name not in BEFORE
    ]  # fmt: skip
    figures += [
        Figure(f"  (info) {before}, {labels:,} labels, p50", many_ms[before], "ms", now, many_ms[now])
        for before, now in BEFORE.items()
    ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    print_table(asyncio.run(measure(args.labels, args.reads)), as_json=args.json)


if __name__ == "__main__":
    main()
