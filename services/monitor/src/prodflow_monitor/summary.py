"""Label summaries and the label list, computed from reduce views only (never by reading job documents)."""

from __future__ import annotations

import asyncio
import time
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


class SummaryCache:
    """Label summaries shared by the callers who ask at once, and reused for a short while.

    A reduce over a label costs time proportional to its jobs on servers without stored reductions (PouchDB
    reduces a 100k-job label in about 5 s of its only CPU), so every reader must not start one of its own: a
    summary being computed is awaited by every caller of its label, and a finished one is reused for ``ttl_s``, or
    for as long as it took to compute if that was longer (``ttl_s = 0``: finished summaries are never reused).
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[asyncio.Task[dict[str, Any]], float]] = {}

    async def get(self, dbs: Sequence[CouchDatabase], label: str) -> dict[str, Any]:
        now = time.monotonic()
        entry = self._entries.get(label)
        if entry is None or (entry[0].done() and (_failed(entry[0]) or now >= entry[1])):
            for key in [k for k, (task, until) in self._entries.items() if task.done() and now >= until]:
                del self._entries[key]
            task = asyncio.create_task(label_summary(dbs, label))
            task.add_done_callback(lambda done: self._finished(label, done, now))
            entry = self._entries[label] = (task, float("inf"))
        return await asyncio.shield(entry[0])

    def _finished(self, label: str, task: asyncio.Task[dict[str, Any]], started: float) -> None:
        if self._entries.get(label, (None, 0.0))[0] is not task:
            _failed(task)  # replaced already (it failed): only mark its exception retrieved
        elif _failed(task):
            del self._entries[label]  # the next caller starts anew
        else:
            took = time.monotonic() - started
            self._entries[label] = (task, time.monotonic() + (max(self.ttl_s, took) if self.ttl_s > 0 else 0.0))


def _failed(task: asyncio.Task[dict[str, Any]]) -> bool:
    """A finished summary that cannot be reused (this also marks its exception retrieved)."""
    return task.cancelled() or task.exception() is not None


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
