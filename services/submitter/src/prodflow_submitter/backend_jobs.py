"""What a backend runs for a job: its module's command template from the campaign, filled in for the job."""

from __future__ import annotations

from typing import Any

from prodflow_core import jobdocs
from prodflow_core.backends import BackendJob
from prodflow_core.command_template import fill
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_submitter.campaigns import CampaignPlan, entry_label
from prodflow_submitter.command_template import job_values
from prodflow_submitter.models import Campaign, SiteRow, campaign_number
from prodflow_submitter.schemas import ModuleEntry
from prodflow_submitter.sites import output_root
from prodflow_submitter.submission import plan_of

Doc = dict[str, Any]


class BackendJobs:
    """Each job's backend job and priority, from its campaign (read and its plan validated once per campaign: a
    stored campaign's plan and command templates never change, and a job's are asked for at its claim and again
    at its submission)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._campaigns: dict[str, tuple[Campaign, CampaignPlan]] = {}

    async def campaign(self, campaign_id: str) -> tuple[Campaign, CampaignPlan]:
        """The stored campaign ``campaign_id`` and its plan; ``LookupError`` if there is none."""
        cached = self._campaigns.get(campaign_id)
        if cached is None:
            async with self._sessions() as session:
                found = await session.get(Campaign, campaign_number(campaign_id))
            if found is None:
                raise LookupError(f"campaign {campaign_id} of a job is unknown")
            self._campaigns[campaign_id] = cached = (found, plan_of(found))
        return cached

    async def priority(self, campaign_id: str, label: str, module: str) -> int:
        """The priority of a campaign's jobs of one module (as their documents have it); 0 if unknown here."""
        try:
            _campaign, plan = await self.campaign(campaign_id)
        except LookupError:
            return 0
        return int(module_entry(plan, module, label).priority or 0)

    async def of(self, site: SiteRow, doc: Doc) -> BackendJob:
        """What the backend runs for a job: its module's command template filled in, in its output folder."""
        campaign, plan = await self.campaign(str(doc["campaign_id"]))
        entry = module_entry(plan, doc["module"], doc["label"])
        output_dir = jobdocs.job_output_dir(output_root(site), doc["_id"])
        command = fill(campaign.command_templates[doc["module"]], job_values(doc, entry.model_dump(), output_dir))
        env = {"PRODFLOW_JOB_ID": doc["_id"], "PRODFLOW_LABEL": doc["label"], "PRODFLOW_ATTEMPT": str(doc["attempt"])}
        return BackendJob(name=jobdocs.backend_job_name(doc), command=command, output_dir=output_dir, env=env,
                          walltime_s=site.max_walltime_s)  # fmt: skip


def module_entry(plan: CampaignPlan, module: str, label: str) -> ModuleEntry:
    """The jobs.json entry of a job: its module's, under its label when the module is there twice."""
    return next(
        (e for e in plan.jobs.modules if e.module == module and entry_label(e, plan) == label),
        next(e for e in plan.jobs.modules if e.module == module),
    )
