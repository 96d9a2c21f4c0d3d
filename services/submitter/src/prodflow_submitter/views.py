"""Turning stored campaigns and sites into API answers (with the kept counts of their jobs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prodflow_core.counts import campaign_counts, label_jobs
from prodflow_core.jobdocs import exactly_entry
from prodflow_core.problems import not_found

from prodflow_submitter import exactly
from prodflow_submitter.campaigns import summarise
from prodflow_submitter.models import Campaign, campaign_number, campaign_public_id
from prodflow_submitter.monitor_api import archived_exactly_lines
from prodflow_submitter.runtime import Runtime
from prodflow_submitter.schemas import CampaignOut
from prodflow_submitter.submission import exactly_path, plan_of


async def load_campaign(runtime: Runtime, public_id: str) -> Campaign:
    """The campaign ``camp-000007`` or a 404 problem."""
    number = campaign_number(public_id)
    async with runtime.sessions() as session:
        row = await session.get(Campaign, number) if number is not None else None
    if row is None:
        raise not_found("Campaign", public_id)
    return row


async def campaign_out(
    runtime: Runtime, row: Campaign, *, with_counts: bool = True, created_now: int = 0
) -> CampaignOut:
    """A campaign as the API shows it; ``counts`` by status are the kept counts (O(statuses) to read)."""
    counts = {}
    if with_counts and row.state == "created":
        counts = await campaign_counts(runtime.counter.engine, row.public_id)
    return CampaignOut(
        id=row.public_id, experiment=row.experiment, label=row.label, labels=row.labels, request_id=row.request_id,
        database=row.database, site=row.site, pass_number=row.pass_number, kind=row.kind,
        parent_campaign=campaign_public_id(row.parent_campaign_id) if row.parent_campaign_id else None,
        state=row.state, jobs=row.jobs, created=created_now, rat_v=row.rat_v, ratdb_tag=row.ratdb_tag,
        created_by=row.created_by, created_at=row.created_at, counts=counts,
        exactly=f"/api/campaigns/{row.public_id}/exactly",
    )  # fmt: skip


async def campaign_exactly(runtime: Runtime, row: Campaign) -> str:
    """The campaign's .exactly text (rebuilt from its jobs.json if the file went missing)."""
    path = exactly_path(runtime, row.public_id)
    text = await asyncio.to_thread(_read, path)
    if text is None:
        text = "".join(summarise(plan_of(row)).exactly.lines())
    return text


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def label_exactly(runtime: Runtime, database: str, label: str, pass_number: int | None) -> str:
    """The .exactly of a label: every (module, run, pass) it has, or those of one pass, from the kept counts'
    ledger (job ids say module, run and pass) once it holds every change made before this call.

    A label with no documents counted in ``database`` may be archived: monitor serves its entries from the archive.
    """
    await runtime.counted_to_now(database)
    entries = [exactly_entry(doc_id) for doc_id, _ in await label_jobs(runtime.counter.engine, database, label)]
    if not entries:
        settings = runtime.settings
        entries = await archived_exactly_lines(settings.monitor_url, settings.identity_secret, label, pass_number)
    return exactly.render(e for e in entries if pass_number is None or e[2] == pass_number)
