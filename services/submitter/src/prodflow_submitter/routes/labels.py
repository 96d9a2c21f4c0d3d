"""``/api/labels/{label}/exactly``: the .exactly of a whole label (the gateway routes this one path here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from prodflow_core.identity import Reader
from prodflow_core.problems import not_found

from prodflow_submitter.runtime import RuntimeDep
from prodflow_submitter.schemas import Database
from prodflow_submitter.submission import campaigns_of
from prodflow_submitter.views import label_exactly

router = APIRouter(prefix="/api/labels", tags=["labels"])


@router.get("/{label}/exactly", response_class=PlainTextResponse)
async def get_label_exactly(
    label: str,
    identity: Reader,
    runtime: RuntimeDep,
    database: Database = "data-production",
    pass_number: Annotated[int | None, Query(alias="pass", ge=1, description="only this pass")] = None,
) -> PlainTextResponse:
    """Every (module, run, pass) of a label's jobs, all passes or one, as a .exactly file."""
    async with runtime.sessions() as session:
        campaigns = [c for c in await campaigns_of(session, database=database) if label in c.labels]
    if not campaigns:
        raise not_found("Label", label)
    for experiment in sorted({c.experiment for c in campaigns}):
        identity.require_experiment(experiment)
    suffix = f"_p{pass_number}" if pass_number else ""
    return PlainTextResponse(
        await label_exactly(runtime, database, label, pass_number),
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{label}{suffix}.exactly"'},
    )
