"""Design documents monitor syncs into both job databases, and the reduce queries it answers summaries from.

``_design/jobs`` (FORMATS.md, shared with submitter) plus ``_design/monitor`` for what summaries need beyond
it: counts per experiment and label (``GET /api/labels``), counts with events per module (``_stats`` gives
the count and the sum of events in one row), and listing views whose keys end in the doc id (for paging).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

from prodflow_core.couch import CouchDatabase, DesignDocument, View
from prodflow_core.jobdocs import FINAL_STATUSES, JOBS_DESIGN, STATUSES

HIGH: Final[dict[str, Any]] = {}
"""The highest JSON key (``{}``): the end of a key-prefix range."""


def _emit_if_job(body: str) -> str:
    return f"function (doc) {{ if (doc.type === 'job') {{ {body} }} }}"


MONITOR_DESIGN: Final = DesignDocument(
    name="monitor",
    views={
        "experiment_label_status": View(_emit_if_job("emit([doc.experiment, doc.label, doc.status], 1);"), "_count"),
        # Listing views: the doc id ends every key, so keys are unique and pages resume at a key.
        "list_by_status": View(_emit_if_job("emit([doc.status, doc._id], null);")),
        "list_by_label_status": View(_emit_if_job("emit([doc.label, doc.status, doc._id], null);")),
        "list_by_site_status": View(_emit_if_job("emit([doc.site, doc.status, doc._id], null);")),
        "label_module_status": View(
            _emit_if_job("emit([doc.label, doc.module, doc.status], doc.events || 0);"), "_stats"
        ),
    },
)

DESIGN_DOCUMENTS: Final = [JOBS_DESIGN, MONITOR_DESIGN]


async def label_status_counts(db: CouchDatabase, label: str) -> dict[str, int]:
    """``{status: n}`` of one label, from the ``by_label_status`` reduce."""
    rows = (await db.view("jobs", "by_label_status", group=True, startkey=[label], endkey=[label, HIGH])).rows
    return {row["key"][1]: int(row["value"]) for row in rows}


async def label_has_unfinished(db: CouchDatabase, label: str) -> bool:
    """True if a job of ``label`` is not final: one index lookup (``limit=1``), not a reduce over the label.

    A reduce over a big label costs time proportional to its jobs on servers without stored reductions (PouchDB),
    and this question is asked after every batch of finished jobs.
    """
    keys = [[label, status] for status in STATUSES if status not in FINAL_STATUSES]
    return bool((await db.view("jobs", "by_label_status", keys=keys, reduce=False, limit=1)).rows)


def is_label_final(counts: dict[str, int]) -> bool:
    """True if a label has jobs and every one of them is in a final status."""
    return bool(counts) and all(status in FINAL_STATUSES for status in counts)


async def label_module_stats(db: CouchDatabase, label: str) -> dict[str, dict[str, dict[str, int]]]:
    """``{module: {status: {"jobs": n, "events": e}}}`` of one label, from the ``label_module_status`` reduce."""
    rows = (await db.view("monitor", "label_module_status", group=True, startkey=[label], endkey=[label, HIGH])).rows
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in rows:
        _, module, status = row["key"]
        out[module][status] = {"jobs": int(row["value"]["count"]), "events": int(row["value"]["sum"])}
    return dict(out)


async def labels_by_experiment(
    db: CouchDatabase, experiments: Iterable[str] | None
) -> dict[tuple[str, str], dict[str, int]]:
    """``{(experiment, label): {status: n}}`` for ``experiments`` (``None`` = all)."""
    if experiments is None:
        rows = (await db.view("monitor", "experiment_label_status", group=True)).rows
    else:
        rows = []
        for experiment in sorted(experiments):
            rows += (
                await db.view(
                    "monitor",
                    "experiment_label_status",
                    group=True,
                    startkey=[experiment],
                    endkey=[experiment, HIGH],
                )
            ).rows
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for row in rows:
        experiment, label, status = row["key"]
        out[(str(experiment), str(label))][str(status)] = int(row["value"])
    return dict(out)


async def status_counts(db: CouchDatabase) -> dict[str, int]:
    """``{status: n}`` of a whole database, from the ``by_status`` reduce."""
    rows = (await db.view("jobs", "by_status", group=True)).rows
    return {str(row["key"]): int(row["value"]) for row in rows}
