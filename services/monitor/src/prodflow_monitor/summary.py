"""Label summaries and the label list, computed from reduce views only (never by reading job documents)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.jobdocs import COMPLETED, FINAL_STATUSES

from prodflow_monitor.views import is_label_final, label_module_stats, labels_by_experiment


async def label_experiment(dbs: Sequence[CouchDatabase], label: str) -> tuple[str, str | None] | None:
    """``(database, experiment)`` of the first database that holds jobs of ``label``, or ``None``."""
    prefix = f"job:{label}:"
    for db in dbs:
        rows = (await db.all_docs(startkey=prefix, endkey=prefix + "\ufff0", limit=1, include_docs=True)).rows
        if rows and rows[0].get("doc"):
            return db.name, rows[0]["doc"].get("experiment")
    return None


def _summary_of(stats: dict[str, dict[str, dict[str, int]]]) -> dict[str, Any]:
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


async def label_summary(dbs: Sequence[CouchDatabase], label: str) -> dict[str, Any]:
    """Counts per status and per module, events done / requested, per database and in total."""
    per_db: dict[str, dict[str, Any]] = {}
    merged: dict[str, dict[str, dict[str, int]]] = {}
    for db in dbs:
        stats = await label_module_stats(db, label)
        if not stats:
            continue
        per_db[db.name] = _summary_of(stats)
        for module, by_status in stats.items():
            target = merged.setdefault(module, {})
            for status, value in by_status.items():
                held = target.setdefault(status, {"jobs": 0, "events": 0})
                held["jobs"] += value["jobs"]
                held["events"] += value["events"]
    total = _summary_of(merged)
    total["complete"] = is_label_final(total["counts"])
    total["final"] = sum(n for status, n in total["counts"].items() if status in FINAL_STATUSES)
    return {"label": label, **total, "databases": per_db}


async def label_list(dbs: Sequence[CouchDatabase], experiments: Iterable[str] | None) -> list[dict[str, Any]]:
    """Every label (of ``experiments``, ``None`` = all) with its counts per status, per database."""
    out: list[dict[str, Any]] = []
    for db in dbs:
        for (experiment, label), counts in sorted((await labels_by_experiment(db, experiments)).items()):
            out.append(
                {
                    "label": label,
                    "experiment": experiment,
                    "database": db.name,
                    "counts": dict(sorted(counts.items())),
                    "jobs": sum(counts.values()),
                    "complete": is_label_final(counts),
                }
            )
    return out
