"""The chain of a SNO+ job output: record → job document (attempts, command, software) → campaign → request."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prodflow_core.identity import Identity
from prodflow_core.provenance import (
    CampaignProvenance,
    FileRecord,
    JobOutputProvenance,
    JobProvenance,
    Provenance,
    RequestProvenance,
    RequestStateChange,
)
from prodflow_core.provenance.attempts import attempts_of

from prodflow_monitor.provenance.peers import Peers

APPROVED = "approved"


def job_of(doc: Mapping[str, Any], database: str) -> JobProvenance:
    """What a job document tells of the job: ids, parameters, attempts, command and software."""
    software = dict(doc.get("software") or {})
    software.update(rat_v=doc.get("rat_v"), ratdb_tag=doc.get("ratdb_tag"), template=dict(doc.get("template") or {}))
    return JobProvenance.model_validate(
        {
            "id": doc["_id"], "database": database, "experiment": doc.get("experiment", ""),
            "label": doc.get("label", ""), "module": doc.get("module", ""), "run": doc.get("run", 0),
            "chunk": doc.get("chunk", 0), "pass": doc.get("pass", 1), "seed": doc.get("seed"),
            "events": doc.get("events"), "status": doc.get("status", ""), "parent": doc.get("parent"),
            "attempts": attempts_of(doc), "command": doc.get("command"), "software": software,
        }
    )  # fmt: skip


def campaign_of(found: Mapping[str, Any]) -> CampaignProvenance:
    """The campaign as submitter's ``GET /api/campaigns/{id}`` shows it."""
    return CampaignProvenance.model_validate(
        {
            "id": found["id"], "site": found["site"], "pass": found["pass"], "kind": found["kind"],
            "parent_campaign": found.get("parent_campaign"), "created_by": found.get("created_by", ""),
            "created_at": str(found["created_at"]),
        }
    )  # fmt: skip


def request_of(found: Mapping[str, Any]) -> RequestProvenance:
    """The request as request-api's ``GET /api/requests/{id}`` shows it; its approver is the last approval."""
    history = [RequestStateChange.model_validate(entry) for entry in found.get("history") or []]
    approvals = [change for change in history if change.state == APPROVED]
    return RequestProvenance(
        id=str(found["id"]),
        title=str(found.get("title", "")),
        requester=str(found.get("requester", "")),
        state=str(found.get("state", "")),
        approved_by=approvals[-1].by if approvals else None,
        approved_at=approvals[-1].at if approvals else None,
        jobs_json_sha256=found.get("jobs_json_sha256"),
        history=history,
    )


async def job_output_chain(
    peers: Peers, identity: Identity, file: FileRecord, attempt: int, doc: Mapping[str, Any], database: str
) -> Provenance:
    """The whole chain of ``file``, written by ``attempt`` of the job ``doc``: campaign and request asked at once."""
    campaign_id, request_id = doc.get("campaign_id"), doc.get("request_id")
    campaign, request = await asyncio.gather(
        peers.campaign(identity, str(campaign_id)) if campaign_id else _none(),
        peers.request(identity, str(request_id)) if request_id else _none(),
    )
    return Provenance(
        kind="job-output",
        experiment=str(doc.get("experiment", "")),
        file=file,
        job_output=JobOutputProvenance(
            attempt=attempt,
            job=job_of(doc, database),
            campaign=campaign_of(campaign) if campaign else None,
            request=request_of(request) if request else None,
        ),
    )


async def _none() -> None:
    return None
