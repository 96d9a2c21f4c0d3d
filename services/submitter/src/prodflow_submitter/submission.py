"""Submitting a campaign: resolve where it goes, create its job documents in bulk, write its .exactly.

Idempotent: a submission is fingerprinted by its content (and by the ``Idempotency-Key`` header when given);
sending the same one again returns the campaign it made, finishing it first if an earlier attempt stopped in
the middle. Job ids are deterministic, so finishing creates only the documents that are still missing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prodflow_core.command_template import fields_with_nul, quoted_placeholders, unknown_placeholders
from prodflow_core.events import utc_now
from prodflow_core.experiment_scope import newest_first, readable_experiments, scoped
from prodflow_core.identity import Identity
from prodflow_core.jobdocs import DATABASE_OF_KIND
from prodflow_core.problems import FieldError, Problem, not_found
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from prodflow_submitter import jobstore
from prodflow_submitter.campaigns import (
    CampaignPlan,
    Expansion,
    ExpansionError,
    check_plan,
    content_sha256,
    entry_label,
    job_docs,
    summarise,
)
from prodflow_submitter.models import Campaign, SiteRow, utcnow
from prodflow_submitter.runtime import Runtime
from prodflow_submitter.schemas import CampaignCreate, CampaignPreview, JobsFile, ModuleSummary

_log = logging.getLogger("prodflow.submitter.submission")
DRY_RUN_ID = "camp-dry-run"


@dataclass(frozen=True)
class Submitted:
    """A campaign and how many documents this call created (0 when it only returned an existing one)."""

    campaign: Campaign
    created_now: int
    new: bool


def _validation(field: str, message: str, kind: str) -> Problem:
    return Problem(422, "Validation failed", f"{field}: {message}", kind="validation",
                   errors=[FieldError(field=field, message=message, type=kind)])  # fmt: skip


def plan_of(row: Campaign) -> CampaignPlan:
    """The plan a stored campaign was made from."""
    return CampaignPlan(
        jobs=JobsFile.model_validate(row.jobs_json), experiment=row.experiment, default_label=row.default_label,
        database=row.database, site=row.site, pass_number=row.pass_number, campaign_id=row.public_id,
        request_id=row.request_id, run_list=row.run_list, ratdb_tag=row.ratdb_tag,
    )  # fmt: skip


def exactly_path(runtime: Runtime, campaign_id: str) -> Path:
    return runtime.settings.exactly_dir / f"{campaign_id}.exactly"


def write_exactly(path: Path, lines: Iterable[str]) -> None:
    """Write the file's ``lines`` as they come (a 1,000,000-line file is never one string), then put it in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        out.writelines(lines)
    tmp.replace(path)


async def _existing(session: AsyncSession, key: str | None, sha: str) -> Campaign | None:
    if key is not None:
        by_key = (await session.exec(select(Campaign).where(Campaign.idempotency_key == key))).first()
        if by_key is not None:
            if by_key.content_sha256 != sha:
                raise Problem(422, "Idempotency key reused", f"Idempotency-Key {key!r} was used for {by_key.public_id} "
                              "with different content", kind="idempotency-key-reused")  # fmt: skip
            return by_key
    return (await session.exec(select(Campaign).where(Campaign.content_sha256 == sha))).first()


async def next_pass(session: AsyncSession, experiment: str, database: str, labels: set[str]) -> int:
    """One more than the highest pass of any of ``labels`` in ``database`` (1 for new labels)."""
    rows = await session.exec(select(Campaign).where(Campaign.experiment == experiment, Campaign.database == database))
    passes = [row.pass_number for row in rows if labels & set(row.labels)]
    return max(passes, default=0) + 1


async def command_templates(
    runtime: Runtime, plan: CampaignPlan, site: SiteRow, override: str | None
) -> dict[str, str]:
    """Each module's command template: the submission's, else the catalog's, else the site's or the default."""
    modules = sorted({entry.module for entry in plan.jobs.modules})
    fallback = override or site.command_template or runtime.settings.default_command_template
    found = (
        [None] * len(modules)
        if override
        else await asyncio.gather(*(runtime.request_api.module_command(plan.experiment, m) for m in modules))
    )
    templates = {module: command or fallback for module, command in zip(modules, found, strict=True)}
    errors: list[FieldError] = []
    for index, entry in enumerate(plan.jobs.modules):
        template = templates.get(entry.module)
        if not template:
            errors.append(FieldError(field=f"jobs.modules.{index}.module", type="no_command",
                                     message=f"no command template for {entry.module!r}: not in the catalog, and "
                                     "neither the submission nor the site gives one"))  # fmt: skip
        elif bad := unknown_placeholders(template, set(entry.template)):
            message = f"the command template uses {bad}, which this entry does not fill"
            errors.append(
                FieldError(field=f"jobs.modules.{index}.template", message=message, type="unknown_placeholder")
            )
        elif quoted := quoted_placeholders(template):
            message = f"the command template has {quoted} inside quotes: an admin must fix the template"
            errors.append(FieldError(field=f"jobs.modules.{index}.module", message=message, type="unsafe_template"))
    if errors:
        raise Problem(422, "Validation failed", "; ".join(e.message for e in errors), kind="validation", errors=errors)
    return {module: template for module, template in templates.items() if template}


def require_command_rights(identity: Identity, site: SiteRow, command_template: str | None) -> None:
    """What a job runs is written by admins: a campaign's own template needs an admin, or a site that allows it."""
    if not command_template or identity.has_role("admin") or site.allow_campaign_commands:
        return
    raise Problem(
        403,
        "Forbidden",
        f"only admins may give a campaign its own command_template (site {site.name!r} does not set "
        "allow_campaign_commands): jobs run the catalog's or the site's command",
        kind="forbidden",
        rule="campaign-command-template-admin-only",
        required_role="admin",
    )


def refuse_nul(body: CampaignCreate) -> None:
    """A 422 problem for NUL bytes anywhere in a submission: no command line or argv can carry one."""
    if fields := fields_with_nul(body.model_dump(mode="json", exclude_none=True)):
        errors = [FieldError(field=f, message="holds a NUL byte", type="nul_byte") for f in fields]
        raise Problem(422, "Validation failed", f"NUL bytes in {fields}", kind="validation", errors=errors)


def _resolve(body: CampaignCreate, runtime: Runtime) -> tuple[str, str, str]:
    experiment = body.experiment or body.jobs.experiment
    if not experiment:
        raise _validation("experiment", "give experiment here or in jobs.experiment", "missing")
    kind = body.jobs.kind
    database = body.database or (DATABASE_OF_KIND[kind] if kind else "data-production")
    return experiment, database, body.site or runtime.settings.default_site


async def submit(
    runtime: Runtime, body: CampaignCreate, identity: Identity, *, key: str | None = None, dry_run: bool = False
) -> Submitted | CampaignPreview:
    """Create (or return, or finish) the campaign of ``body``; with ``dry_run`` only show what it would create."""
    experiment, database, site_name = _resolve(body, runtime)
    identity.require_experiment(experiment)
    refuse_nul(body)
    fingerprint = content_sha256({
        "jobs": body.jobs.model_dump(mode="json", exclude_none=True), "experiment": experiment,
        "label": body.label, "database": database, "site": site_name, "pass": body.pass_number,
        "request_id": body.request_id or body.jobs.request_id, "run_list": body.run_list,
        "ratdb_tag": body.ratdb_tag, "command_template": body.command_template,
    })  # fmt: skip
    async with runtime.sessions() as session:
        site = await session.get(SiteRow, site_name)
        if site is None:
            raise not_found("Site", site_name)
        require_command_rights(identity, site, body.command_template)
        existing = None if dry_run else await _existing(session, key, fingerprint)
        if existing is not None:
            created = await finish(runtime, existing) if existing.state != "created" else 0
            return Submitted(existing, created, new=False)
        plan = CampaignPlan(
            jobs=body.jobs, experiment=experiment, default_label=body.label, database=database, site=site_name,
            pass_number=0, campaign_id=DRY_RUN_ID, request_id=body.request_id or body.jobs.request_id,
            run_list=body.run_list, ratdb_tag=body.ratdb_tag,
        )  # fmt: skip
        try:
            labels = set(expand_labels(plan))
        except ExpansionError as exc:
            raise Problem(422, "Validation failed", str(exc), kind="validation", errors=exc.errors) from exc
        pass_number = body.pass_number or await next_pass(session, experiment, database, labels)
        plan = CampaignPlan(**{**plan.__dict__, "pass_number": pass_number})
        templates = await command_templates(runtime, plan, site, body.command_template)
        if dry_run:
            return preview(plan, summarise(plan), templates)
        row = Campaign(
            experiment=experiment, label=body.label or sorted(labels)[0], default_label=body.label,
            request_id=plan.request_id, database=database, site=site_name, pass_number=pass_number,
            content_sha256=fingerprint, idempotency_key=key, rat_v=body.jobs.rat_v,
            ratdb_tag=body.ratdb_tag if body.ratdb_tag is not None else body.jobs.ratdb_tag,
            jobs_json=body.jobs.model_dump(mode="json", exclude_none=True), run_list=body.run_list,
            command_templates=templates, labels=sorted(labels), created_by=identity.user,
        )  # fmt: skip
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()  # the same submission, sent twice at once: the other one made the row
            raced = await _existing(session, key, fingerprint)
            if raced is None:
                raise
            return Submitted(raced, 0, new=False)
    return Submitted(row, await finish(runtime, row), new=True)


def expand_labels(plan: CampaignPlan) -> list[str]:
    """The labels of a plan's modules (raises :class:`ExpansionError` like :func:`summarise`)."""
    errors = check_plan(plan)
    if errors:
        raise ExpansionError(errors)
    return sorted({label for entry in plan.jobs.modules if (label := entry_label(entry, plan))})


def preview(plan: CampaignPlan, expansion: Expansion, templates: dict[str, str]) -> CampaignPreview:
    """The dry-run answer (builds only the first 100 documents, for their ids)."""
    first = [doc["_id"] for doc in itertools.islice(job_docs(plan, utc_now()), 100)]
    return CampaignPreview(
        experiment=plan.experiment, labels=expansion.labels, database=plan.database, site=plan.site,
        pass_number=plan.pass_number, jobs=expansion.jobs,
        modules=[ModuleSummary(**m) for m in expansion.modules],
        job_ids=first, exactly_lines=len(expansion.exactly),
        command_templates=templates,
    )  # fmt: skip


async def finish(runtime: Runtime, row: Campaign) -> int:
    """Create the campaign's missing job documents, write its .exactly, announce it; returns documents created."""
    plan = plan_of(row)
    expansion = summarise(plan)
    on_created = runtime.on_created
    created, _existing_docs = await jobstore.create_docs(
        runtime.db(row.database),
        job_docs(plan, utc_now()),
        runtime.settings.bulk_chunk,
        (lambda docs: on_created(row.database, docs)) if on_created is not None else None,
    )
    await asyncio.to_thread(write_exactly, exactly_path(runtime, row.public_id), expansion.exactly.lines())
    async with runtime.sessions() as session:
        stored = await session.get(Campaign, row.id)
        assert stored is not None
        stored.state, stored.jobs, stored.updated_at = "created", expansion.jobs, utcnow()
        stored.created_docs += created
        session.add(stored)
        await session.commit()
        row.state, row.jobs, row.created_docs = stored.state, stored.jobs, stored.created_docs
    await announce(runtime, row)
    runtime.wake.set()
    _log.info("campaign %s: %d jobs, %d documents created", row.public_id, row.jobs, created)
    return created


async def announce(runtime: Runtime, row: Campaign) -> None:
    """``campaign.created`` (its id fixed per campaign, so announcing twice publishes once)."""
    data: dict[str, Any] = {
        "campaign_id": row.public_id, "request_id": row.request_id, "label": row.label, "labels": row.labels,
        "database": row.database, "site": row.site, "pass": row.pass_number, "jobs": row.jobs,
    }  # fmt: skip
    await runtime.events.emit("campaign.created", subject=row.public_id, experiment=row.experiment, data=data,
                              event_id=f"evt-campaign-created-{row.public_id}")  # fmt: skip


def _matching(filters: dict[str, Any]) -> SelectOfScalar[Campaign]:
    """Campaigns matching ``filters`` (column → value; ``None`` values are ignored)."""
    query = select(Campaign)
    for name, value in filters.items():
        if value is not None:
            query = query.where(getattr(Campaign, name) == value)
    return query


async def campaigns_of(session: AsyncSession, **filters: Any) -> list[Campaign]:
    """Campaigns matching ``filters`` (column → value; ``None`` values are ignored), newest first."""
    return list((await session.exec(_matching(filters).order_by(col(Campaign.id).desc()))).all())


async def campaigns_for(
    session: AsyncSession, identity: Identity, *, experiment: str | None, limit: int, **filters: Any
) -> list[Campaign]:
    """The newest ``limit`` campaigns matching ``filters`` that ``identity`` may read, one indexed query per
    experiment it may see (:mod:`prodflow_core.experiment_scope`): no other experiment's campaign is read."""
    parts = scoped(_matching(filters), Campaign.experiment, readable_experiments(identity, experiment))
    return await newest_first(session, parts, Campaign.id, limit=limit)
