"""``/api/labels``: labels with counts per status, and one label's summary (from reduce views only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prodflow_core.identity import Reader

from prodflow_monitor.deps import JobDatabases, experiments_of, require_label
from prodflow_monitor.summary import SummaryCache, label_list

router = APIRouter(prefix="/api/labels", tags=["labels"])


@router.get("", summary="Labels with their job counts per status")
async def get_labels(identity: Reader, dbs: JobDatabases, experiment: str | None = None) -> dict[str, Any]:
    """Every label the caller may read (optionally of one experiment), per database."""
    experiments = experiments_of(identity)
    if experiment is not None:
        identity.require_experiment(experiment)
        experiments = {experiment}
    items = await label_list(dbs, experiments)
    return {"items": items, "count": len(items)}


@router.get("/{label}/summary", summary="Counts per status and module, events done / requested")
async def get_label_summary(label: str, identity: Reader, dbs: JobDatabases, request: Request) -> dict[str, Any]:
    """The label's summary; ``complete`` is true when every job is final (may be ``MONITOR_SUMMARY_TTL_S`` old)."""
    experiment = await require_label(dbs, label, identity)
    summaries: SummaryCache = request.app.state.summaries
    return {"experiment": experiment, **await summaries.get(dbs, label)}
