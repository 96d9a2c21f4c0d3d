"""The design document monitor syncs into both job databases: the one reduce it still runs (a check).

``_design/monitor_verify`` holds the reduce that :func:`label_module_stats` runs when an admin checks the kept
counts; with ``autoupdate: false`` CouchDB 3's background indexer leaves it alone, and it is built only when
someone asks (PouchDB builds every view only when queried). Nothing else reads a view: listings, the grabber and
operations read the kept counts' ledger; the design documents that held their views are dropped at start-up
(:data:`prodflow_core.jobdocs.RETIRED_JOB_DESIGNS`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from prodflow_core.couch import CouchDatabase, DesignDocument, View
from prodflow_core.jobdocs import FINAL_STATUSES

HIGH: Final[dict[str, Any]] = {}
"""The highest JSON key (``{}``): the end of a key-prefix range."""


def _emit_if_job(body: str) -> str:
    return f"function (doc) {{ if (doc.type === 'job') {{ {body} }} }}"


VERIFY_DESIGN: Final = DesignDocument(
    name="monitor_verify",
    autoupdate=False,  # CouchDB 3 would otherwise keep it built in the background on every write
    views={
        # GET /api/labels/{label}/summary?verify=true: the full reduce the kept counts are compared with.
        "label_module_status": View(
            _emit_if_job("emit([doc.label, doc.module, doc.status], doc.events || 0);"), "_stats"
        ),
    },
)

DESIGN_DOCUMENTS: Final = [VERIFY_DESIGN]


async def label_status_counts(db: CouchDatabase, label: str) -> dict[str, int]:
    """``{status: n}`` of one label by a full reduce of ``label_module_status``: the reference that tests and
    benches compare the kept counts with (O(jobs) on servers without stored reductions; never on a hot path)."""
    counts: dict[str, int] = defaultdict(int)
    for statuses in (await label_module_stats(db, label)).values():
        for status, stats in statuses.items():
            counts[status] += stats["jobs"]
    return dict(counts)


def is_label_final(counts: dict[str, int]) -> bool:
    """True if a label has jobs and every one of them is in a final status."""
    return bool(counts) and all(status in FINAL_STATUSES for status in counts)


async def label_module_stats(db: CouchDatabase, label: str) -> dict[str, dict[str, dict[str, int]]]:
    """``{module: {status: {"jobs": n, "events": e}}}`` of one label, from the ``label_module_status`` reduce."""
    rows = (
        await db.view("monitor_verify", "label_module_status", group=True, startkey=[label], endkey=[label, HIGH])
    ).rows
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in rows:
        _, module, status = row["key"]
        out[module][status] = {"jobs": int(row["value"]["count"]), "events": int(row["value"]["sum"])}
    return dict(out)
