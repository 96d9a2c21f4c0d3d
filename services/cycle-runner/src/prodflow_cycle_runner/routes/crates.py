"""``GET /api/cycles/{name}/runs/{rid}/ro-crate``: a Snakemake run as a Workflow Run RO-Crate (zip)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from prodflow_core.identity import Reader
from prodflow_core.problems import Problem, not_found
from prodflow_core.provenance.crate import crate_zip
from prodflow_core.sql import SessionDep
from sqlmodel import col, select

from prodflow_cycle_runner import lineage
from prodflow_cycle_runner.deps import API, CycleDep
from prodflow_cycle_runner.models import FileRow, RunRow, StepRow
from prodflow_cycle_runner.run_crate import run_record

router = APIRouter(prefix=API, tags=["runs"])
_CHUNK = 500


@router.get(
    "/{name}/runs/{rid}/ro-crate",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the crate as a zip"}},
)
async def run_crate(cycle: CycleDep, rid: str, identity: Reader, session: SessionDep) -> Response:
    """The run as a Workflow Run RO-Crate (https://w3id.org/ro/wfrun/workflow/0.5): the Snakefile as the workflow,
    one ``CreateAction`` for the run and one per Snakemake job, the software pins, config.json and the parameters;
    every file the run made is referenced (not copied) with its size and adler32."""
    run = await session.get(RunRow, rid)
    if run is None or run.cycle != cycle.name:
        raise not_found("Run", rid)
    if run.kind != "snakemake":
        raise Problem(409, "Not a Snakemake run", f"{rid} is an install of the cycle's software", kind="conflict")
    steps = list((await session.exec(select(StepRow).where(StepRow.run_id == rid).order_by(col(StepRow.jobid)))).all())
    made = {o["path"] for s in steps for o in s.outputs}
    wanted = sorted({p for s in steps for p in s.inputs} - made)
    sources: list[FileRow] = []
    for start in range(0, len(wanted), _CHUNK):
        query = select(FileRow).where(
            FileRow.cycle == cycle.name, col(FileRow.path).in_(wanted[start : start + _CHUNK])
        )
        sources.extend((await session.exec(query)).all())
    snapshot: dict[str, Any] | None = run.provenance
    if not snapshot:
        snapshot = await asyncio.to_thread(lineage.run_snapshot, cycle)
    record = await asyncio.to_thread(run_record, cycle, run, steps, sources, snapshot)
    data = await asyncio.to_thread(crate_zip, record)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{cycle.name}-{rid}-ro-crate.zip"'},
    )
