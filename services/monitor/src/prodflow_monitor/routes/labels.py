"""``/api/labels``: labels with counts per status, and one label's summary (from the kept counts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from prodflow_core.counts import home_of, known_experiments
from prodflow_core.cursors import Cursors, CursorScope, bad_cursor
from prodflow_core.identity import Reader
from prodflow_core.problems import Problem

from prodflow_monitor.deps import CountsDep, JobDatabases, experiments_of, readable_home
from prodflow_monitor.summary import (
    counts_and_archival,
    label_page,
    label_summary,
    verify_archived_label,
    verify_label,
)

router = APIRouter(prefix="/api/labels", tags=["labels"])


@router.get("", summary="Labels with their job counts per status, a page at a time")
async def get_labels(
    identity: Reader,
    dbs: JobDatabases,
    counts: CountsDep,
    cursors: Cursors,
    experiment: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """A page of the labels the caller may read (optionally of one experiment), per database in the monitor's
    order, then by experiment and name; ``next`` is the cursor of the next page (``null`` at the end).

    ``next`` is opaque and good for 24 h, for this query and this caller only: anything else is a 400 problem.
    """
    experiments = experiments_of(identity)
    if experiment is not None:
        identity.require_experiment(experiment)
        experiments = {experiment}
    scope = CursorScope.of("monitor.labels", identity, experiment=experiment)
    after = None if cursor is None else cursors.open(cursor, scope)
    readable = experiments if experiments is not None else await known_experiments(counts)
    try:
        position = None if after is None else (str(after[0]), str(after[1]), str(after[2]))
        items, last = await label_page(counts, [db.name for db in dbs], readable, limit=limit, after=position)
    except (ValueError, TypeError, IndexError) as exc:
        raise bad_cursor("the cursor does not name a place in this list") from exc
    return {"items": items, "count": len(items), "next": None if last is None else cursors.seal(scope, list(last))}


@router.get("/{label}/summary", summary="Counts per status and module, events done / requested")
async def get_label_summary(
    label: str,
    identity: Reader,
    dbs: JobDatabases,
    counts: CountsDep,
    verify: Annotated[
        bool, Query(description="admin: also compare the kept counts with a full reduce (costs O(jobs))")
    ] = False,
) -> dict[str, Any]:
    """The label's summary from the kept counts; ``complete`` is true when every job is final.

    ``verify=true`` (admin) adds ``verification``: each (database, module, status) whose kept count differs
    from a full reduce of the job documents (for an archived label: from the index of its archive), so an
    operator can check the counts after an incident. ``archived`` is true while the label is archived.
    """
    rows, archived = await counts_and_archival(counts, label)
    experiment = readable_home(home_of(rows), label, identity)
    summary = {"experiment": experiment, **label_summary(label, rows), "archived": archived}
    if verify:
        if not identity.has_role("admin"):
            raise Problem(403, "Forbidden", "verify=true needs the admin role", kind="forbidden")
        check = verify_archived_label if archived else verify_label
        summary["verification"] = await check(counts, dbs, label)
    return summary
