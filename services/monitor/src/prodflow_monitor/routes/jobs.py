"""``/api/jobs``: job documents, filtered and paged by the kept counts' ledger, and one job with its history."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response
from prodflow_core.counts import known_experiments
from prodflow_core.cursors import Cursors, CursorScope, bad_cursor
from prodflow_core.identity import Reader
from prodflow_core.jobdocs import JOB_DATABASES, STATUSES
from prodflow_core.problems import FieldError, Problem

from prodflow_monitor.archive.reads import archived_docs, archived_job
from prodflow_monitor.deps import CountsDep, FollowedJobDocs, JobDatabases, LabelScopesDep, experiments_of
from prodflow_monitor.listing import JobFilter, list_jobs

router = APIRouter(prefix="/api/jobs", tags=["jobs"])


def _bad_query(field: str, message: str) -> Problem:
    return Problem(
        422,
        "Validation Error",
        message,
        kind="validation",
        errors=[FieldError(field=f"query.{field}", message=message)],
    )


@router.get(
    "", summary="List jobs (filters: label, status, module, run, pass, site, database)", response_model=dict[str, Any]
)
async def get_jobs(
    identity: Reader,
    dbs: FollowedJobDocs,
    counts: CountsDep,
    scopes: LabelScopesDep,
    cursors: Cursors,
    label: str | None = None,
    status: Annotated[str | None, Query(json_schema_extra={"enum": list(STATUSES)})] = None,
    module: str | None = None,
    run: int | None = None,
    pass_number: Annotated[int | None, Query(alias="pass")] = None,
    site: str | None = None,
    database: Annotated[str | None, Query(json_schema_extra={"enum": list(JOB_DATABASES)})] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Response:
    """A page of jobs (without their history) and the cursor of the next page (``next``, ``null`` at the end).

    ``next`` is opaque and good for 24 h, for this query (the same filters) and this caller only: anything else
    is a 400 problem.
    """
    if status is not None and status not in STATUSES:
        raise _bad_query("status", f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    selected = dbs
    if database is not None:
        selected = [db for db in dbs if db.name == database]
        if not selected:
            raise _bad_query("database", f"unknown database {database!r}")
    selection = JobFilter(label=label, status=status, module=module, run=run, pass_number=pass_number, site=site)
    filters = {"label": label, "status": status, "module": module, "run": run, "pass": pass_number, "site": site}
    scope = CursorScope.of("monitor.jobs", identity, **filters, database=database)
    after = None if cursor is None else cursors.open(cursor, scope)
    experiments = experiments_of(identity)
    if label is not None:  # the caller's experiments that hold the label: none for another experiment's label
        readable = await scopes.experiments(label, experiments)
    else:
        readable = sorted(experiments) if experiments is not None else await known_experiments(counts)
    if not readable:
        return _page_response([], None)  # nothing the caller may read: nothing is read
    try:
        page = await list_jobs(
            counts,
            [db.listing for db in selected],
            selection,
            readable,
            limit=limit,
            after=after,
            visible=lambda doc: identity.can_access(str(doc.get("experiment"))),
            missing=lambda database, ids: archived_docs(counts, database, ids),
        )
    except ValueError as exc:
        raise bad_cursor(str(exc)) from exc
    return _page_response(page.items, None if page.next is None else cursors.seal(scope, page.next))


def _page_response(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    # Job documents as CouchDB gave them: encoded as they are, not validated against ``dict[str, Any]`` first
    # (FastAPI's check and encoding of a page of 50 were ~6 % of the monitor's CPU under load.py).
    body = {"items": items, "count": len(items), "next": next_cursor}
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/{job_id}", summary="One job with its history")
async def get_job(job_id: str, identity: Reader, dbs: JobDatabases, counts: CountsDep) -> dict[str, Any]:
    """The job document (``database`` tells which database holds it; ``archived`` is true if read from the
    archive of its label)."""
    for db in dbs:
        doc = await db.get_or_none(job_id)
        if doc is not None and doc.get("type") == "job":
            identity.require_experiment(str(doc.get("experiment")))
            return {**doc, "database": db.name}
    found = await archived_job(counts, [db.name for db in dbs], job_id) if job_id.startswith("job:") else None
    if found is not None:
        identity.require_experiment(str(found.get("experiment")))
        return found
    raise Problem(404, "Not Found", f"no job {job_id!r}", kind="not-found")
