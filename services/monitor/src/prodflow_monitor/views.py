"""Design documents monitor syncs into both job databases, and the one reduce it still runs (a check).

``_design/jobs`` (shared with submitter) and ``_design/monitor_verify`` with the reduce that
:func:`label_module_stats` runs when an admin checks the kept counts; with ``autoupdate: false`` CouchDB 3's
background indexer leaves it alone, and it is built only when someone asks (PouchDB builds every view only when
queried). ``GET /api/jobs`` reads no view: its pages come from the kept counts' ledger (``listing.py``), so the
listing views of ``_design/monitor`` are gone (:data:`RETIRED_DESIGNS`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from prodflow_core.couch import CouchDatabase, DesignDocument, DocumentConflict, View
from prodflow_core.jobdocs import FINAL_STATUSES, JOBS_DESIGN

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

DESIGN_DOCUMENTS: Final = [JOBS_DESIGN, VERIFY_DESIGN]

RETIRED_DESIGNS: Final = ("_design/monitor",)
"""Design documents monitor synced before and reads no more (the listing views, now served by the ledger)."""


async def drop_retired_designs(db: CouchDatabase) -> list[str]:
    """Delete the :data:`RETIRED_DESIGNS` still in ``db``, so the server builds nothing more for them (a view
    cleanup afterwards removes their index files); returns the ids deleted (safe to run from several replicas)."""
    dropped = []
    for design_id in RETIRED_DESIGNS:
        stored = await db.get_or_none(design_id)
        if stored is None:
            continue
        try:
            await db.delete(design_id, str(stored["_rev"]))
        except DocumentConflict:
            continue  # another replica changed or deleted it first
        dropped.append(design_id)
    return dropped


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
