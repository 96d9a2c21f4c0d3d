"""Label summaries and the label list, read from the kept counts (``prodflow_core.counts``), never from jobs.

A summary costs O(databases x modules x statuses) rows of SQL whatever the size of the label. The reduce
views stay as the check of the kept counts (:func:`verify_label`), not as a hot path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.counts import (
    LABEL_COUNTS,
    ModuleCount,
    ModuleStats,
    count_differences,
    label_counts,
    labels_after,
    module_count,
    module_stats,
)
from prodflow_core.counts.tables import LabelCount
from prodflow_core.jobdocs import COMPLETED, FINAL_STATUSES
from prodflow_core.sqlite_reads import fetch_rows
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_monitor.archive.reads import SERVED_FROM_ARCHIVE
from prodflow_monitor.archive.tables import LabelArchive, index_stats
from prodflow_monitor.views import is_label_final, label_module_stats

_COUNTED: Table = LabelCount.__table__  # type: ignore[attr-defined]
_ARCHIVALS: Table = LabelArchive.__table__  # type: ignore[attr-defined]
_COUNTS_AND_ARCHIVAL = LABEL_COUNTS.add_columns(_ARCHIVALS.c.state).outerjoin_from(
    _COUNTED, _ARCHIVALS, _ARCHIVALS.c.label == _COUNTED.c.label
)
"""A summary's one read: the label's kept counts, each row with the label's archival state (``None`` if none)."""


def _summary_of(stats: ModuleStats) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    events_requested = events_done = 0
    modules: dict[str, Any] = {}
    for module, by_status in sorted(stats.items()):
        module_counts = {status: value["jobs"] for status, value in sorted(by_status.items())}
        requested = sum(value["events"] for value in by_status.values())
        done = by_status.get(COMPLETED, {}).get("events", 0)
        modules[module] = {
            "counts": module_counts,
            "jobs": sum(module_counts.values()),
            "events_requested": requested,
            "events_done": done,
        }
        counts.update(module_counts)
        events_requested += requested
        events_done += done
    return {
        "counts": dict(sorted(counts.items())),
        "jobs": sum(counts.values()),
        "events_requested": events_requested,
        "events_done": events_done,
        "modules": modules,
    }


def label_summary(label: str, rows: Sequence[ModuleCount]) -> dict[str, Any]:
    """Counts per status and per module, events done / requested, per database and in total, of the kept counts
    ``rows`` of ``label``."""
    per_db = {database: _summary_of(module_stats(rows, database)) for database in sorted({r.database for r in rows})}
    total = _summary_of(module_stats(rows))
    total["complete"] = is_label_final(total["counts"])
    total["final"] = sum(n for status, n in total["counts"].items() if status in FINAL_STATUSES)
    return {"label": label, **total, "databases": per_db}


async def counts_and_archival(engine: AsyncEngine, label: str) -> tuple[list[ModuleCount], bool]:
    """The kept counts of ``label`` and whether its reads come from its archive now, in one query."""
    rows = await fetch_rows(engine, _COUNTS_AND_ARCHIVAL, {"label": label})
    return [module_count(row) for row in rows], bool(rows) and rows[0][6] in SERVED_FROM_ARCHIVE


async def verify_label(engine: AsyncEngine, dbs: Sequence[CouchDatabase], label: str) -> dict[str, Any]:
    """The kept counts of ``label`` against a full reduce of each database: every difference found."""
    rows = await label_counts(engine, label)
    report: dict[str, Any] = {}
    for db in dbs:
        differences = count_differences(module_stats(rows, db.name), await label_module_stats(db, label))
        report[db.name] = differences
    return {"consistent": not any(report.values()), "differences": report}


async def verify_archived_label(engine: AsyncEngine, dbs: Sequence[CouchDatabase], label: str) -> dict[str, Any]:
    """The kept counts of an archived ``label`` against the index of its archive (its documents are gone from
    the databases, so a reduce would count nothing): every difference found, ``source`` ``archive``."""
    rows = await label_counts(engine, label)
    archived = await index_stats(engine, label)
    report = {db.name: count_differences(module_stats(rows, db.name), archived.get(db.name, {})) for db in dbs}
    return {"consistent": not any(report.values()), "differences": report, "source": "archive"}


LabelPosition = tuple[str, str, str]
"""Where a page of the label list ends: ``(database, experiment, label)`` of its last label."""


async def label_page(
    engine: AsyncEngine,
    databases: Sequence[str],
    experiments: Iterable[str],
    *,
    limit: int,
    after: LabelPosition | None = None,
) -> tuple[list[dict[str, Any]], LabelPosition | None]:
    """Up to ``limit`` labels of ``experiments`` after ``after``, with their counts per status, in the order of
    ``databases``, then by experiment and name; and the position of the last one if more follow (else ``None``).

    Each (database, experiment) is read from the position on, a page at a time (:func:`labels_after`), so a page
    costs O(limit x modules x statuses) rows whatever the number of labels. Raises ``ValueError`` for a position
    in a database that is not one of ``databases``.
    """
    at = (databases.index(after[0]), after[1], after[2]) if after is not None else (0, "", "")
    items: list[dict[str, Any]] = []
    for index in range(at[0], len(databases)):
        for experiment in sorted(experiments):
            if (index, experiment) < at[:2]:
                continue
            from_label = at[2] if (index, experiment) == at[:2] else ""
            found = await labels_after(engine, databases[index], experiment, from_label, limit + 1 - len(items))
            items.extend(_label_item(databases[index], experiment, label, counts) for label, counts in found)
            if len(items) > limit:
                last = items[limit - 1]
                return items[:limit], (last["database"], last["experiment"], last["label"])
    return items, None


def _label_item(database: str, experiment: str, label: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "label": label,
        "experiment": experiment,
        "database": database,
        "counts": dict(sorted(counts.items())),
        "jobs": sum(counts.values()),
        "complete": is_label_final(counts),
    }
