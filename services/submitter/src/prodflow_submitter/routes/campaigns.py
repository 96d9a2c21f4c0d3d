"""``/api/campaigns``: submit a jobs.json, read campaigns and their .exactly, cancel, operate on a label."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import PlainTextResponse
from prodflow_core.counts import label_status_counts
from prodflow_core.identity import Manager, Reader
from prodflow_core.problems import not_found

from prodflow_submitter import operations
from prodflow_submitter.runtime import RuntimeDep
from prodflow_submitter.schemas import (
    CampaignCreate,
    CampaignOut,
    CampaignPreview,
    CancelBody,
    LabelCancelBody,
    OperationOut,
    ResubmitBody,
)
from prodflow_submitter.submission import Submitted, campaigns_for, submit
from prodflow_submitter.views import campaign_exactly, campaign_out, load_campaign

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])
EXACTLY_MEDIA = "text/plain; charset=utf-8"


@router.post("", response_model=CampaignOut | CampaignPreview, response_model_by_alias=True, status_code=201)
async def create_campaign(
    body: CampaignCreate,
    identity: Manager,
    runtime: RuntimeDep,
    response: Response,
    dry_run: Annotated[bool, Query(description="show what would be created, write nothing")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> CampaignOut | CampaignPreview:
    """Submit a jobs.json: one job document per (module, run, chunk, pass), its .exactly, jobs to the site.

    Sending the same submission again (or the same ``Idempotency-Key``) answers 200 with the campaign it made,
    after creating whatever an interrupted earlier attempt left missing.
    """
    result = await submit(runtime, body, identity, key=idempotency_key, dry_run=dry_run)
    if not isinstance(result, Submitted):
        response.status_code = 200
        return result
    if not result.new:
        response.status_code = 200
    response.headers["Location"] = f"/api/campaigns/{result.campaign.public_id}"
    return await campaign_out(runtime, result.campaign, with_counts=False, created_now=result.created_now)


@router.get("", response_model=list[CampaignOut], response_model_by_alias=True)
async def list_campaigns(
    identity: Reader,
    runtime: RuntimeDep,
    experiment: str | None = None,
    label: str | None = None,
    request_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CampaignOut]:
    """Campaigns, newest first (only the caller's experiments, read at the index: never another's rows)."""
    async with runtime.sessions() as session:
        rows = await campaigns_for(
            session, identity, experiment=experiment, limit=limit, label=label, request_id=request_id
        )
    return [await campaign_out(runtime, r, with_counts=False) for r in rows]


@router.get("/{campaign_id}", response_model=CampaignOut, response_model_by_alias=True)
async def get_campaign(campaign_id: str, identity: Reader, runtime: RuntimeDep) -> CampaignOut:
    """A campaign with its jobs counted by status."""
    row = await load_campaign(runtime, campaign_id)
    identity.require_experiment(row.experiment)
    return await campaign_out(runtime, row)


@router.get("/{campaign_id}/exactly", response_class=PlainTextResponse)
async def get_campaign_exactly(campaign_id: str, identity: Reader, runtime: RuntimeDep) -> PlainTextResponse:
    """The campaign's .exactly file: ``module run pass`` per job, sorted, no header."""
    row = await load_campaign(runtime, campaign_id)
    identity.require_experiment(row.experiment)
    return PlainTextResponse(
        await campaign_exactly(runtime, row),
        media_type=EXACTLY_MEDIA,
        headers={"Content-Disposition": f'attachment; filename="{row.public_id}.exactly"'},
    )


@router.post("/{campaign_id}/cancel", response_model=OperationOut, response_model_by_alias=True)
async def cancel_campaign(campaign_id: str, body: CancelBody, identity: Manager, runtime: RuntimeDep) -> OperationOut:
    """Cancel the campaign's jobs that are not final yet (or only ``job_ids``), at their backends too."""
    row = await load_campaign(runtime, campaign_id)
    identity.require_experiment(row.experiment)
    scope = operations.JobScope.of_campaign(row)
    return await operations.cancel(runtime, row.database, scope, identity, body.job_ids, body.reason)


@router.post("/by-label/{label}/cancel", response_model=OperationOut, response_model_by_alias=True)
async def cancel_label(label: str, body: LabelCancelBody, identity: Manager, runtime: RuntimeDep) -> OperationOut:
    """Cancel a label's jobs that are not final yet (or only ``job_ids``), at their backends too."""
    result = await operations.cancel(runtime, body.database, operations.JobScope.of_label(label), identity,
                                     body.job_ids, body.reason)  # fmt: skip
    if not result.job_ids and not result.skipped and body.job_ids is None:
        await _require_label(runtime, body.database, label)
    return result


@router.post("/by-label/{label}/resubmit", response_model=OperationOut, response_model_by_alias=True)
async def resubmit_label(label: str, body: ResubmitBody, identity: Manager, runtime: RuntimeDep) -> OperationOut:
    """Resubmit a label's failed jobs: as the next pass (new documents, ``parent`` set), or the next attempt."""
    db = body.database
    if body.mode == "next_attempt":
        result = await operations.retry(runtime, db, label, identity, body.job_ids, body.reason)
    else:
        result = await operations.resubmit_next_pass(runtime, db, label, identity, body.job_ids, body.site,
                                                     body.reason)  # fmt: skip
    if not result.job_ids and not result.skipped and body.job_ids is None:
        await _require_label(runtime, body.database, label)
    return result


async def _require_label(runtime: RuntimeDep, database: str, label: str) -> None:
    if not await label_status_counts(runtime.counter.engine, database, label):
        raise not_found("Label", label)
