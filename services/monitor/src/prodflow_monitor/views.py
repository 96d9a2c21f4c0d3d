"""Design documents monitor syncs into both job databases, and the one reduce it still runs (a check).

``_design/jobs`` (shared with submitter); ``_design/monitor`` with the listing views of ``GET /api/jobs``, whose
keys end in the doc id (for paging); ``_design/monitor_verify`` with the reduce that :func:`label_module_stats`
runs when an admin checks the kept counts. A design document's views are built together, so the check's index
never delays a listing; with ``autoupdate: false`` CouchDB 3's background indexer leaves it alone too, and it is
built only when someone asks (PouchDB builds every view only when queried).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from prodflow_core.couch import CouchDatabase, DesignDocument, View
from prodflow_core.jobdocs import FINAL_STATUSES, JOBS_DESIGN

HIGH: Final[dict[str, Any]] = {}
"""The highest JSON key (``{}``): the end of a key-prefix range."""


def _emit_if_job(body: str) -> str:
    return f"function (doc) {{ if (doc.type === 'job') {{ {body} }} }}"


MONITOR_DESIGN: Final = DesignDocument(
    name="monitor",
    views={
        # GET /api/jobs (listing.py): the doc id ends every key, so keys are unique and pages resume at a key;
        # keys not by label start with the experiment, so a caller's listing reads only its experiments' jobs.
        "list_by_status": View(_emit_if_job("emit([doc.experiment, doc.status, doc._id], null);")),
        "list_by_label_status": View(_emit_if_job("emit([doc.label, doc.status, doc._id], null);")),
        "list_by_site_status": View(_emit_if_job("emit([doc.experiment, doc.site, doc.status, doc._id], null);")),
    },
)

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

DESIGN_DOCUMENTS: Final = [JOBS_DESIGN, MONITOR_DESIGN, VERIFY_DESIGN]


async def label_status_counts(db: CouchDatabase, label: str) -> dict[str, int]:
    """``{status: n}`` of one label by a full ``by_label_status`` reduce: the reference that tests and benches
    compare the kept counts with (O(jobs) on servers without stored reductions; never on a hot path)."""
    rows = (await db.view("jobs", "by_label_status", group=True, startkey=[label], endkey=[label, HIGH])).rows
    return {row["key"][1]: int(row["value"]) for row in rows}


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
