"""Bulk operations on the jobs of a campaign or a label: cancel, and resubmit the failures.

Each is a few bulk calls (the jobs' ids from the kept counts' ledger, ``_all_docs`` with keys, one
``_bulk_docs``, one backend call per site) and one event with the list of job ids. The ledger is read once the
counts hold every change made before the operation (:meth:`Runtime.counted_to_now`): no CouchDB index, so no
wait for an index build, and nothing written just before is missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core import jobdocs
from prodflow_core.counts import label_jobs
from prodflow_core.events import utc_now
from prodflow_core.identity import Identity
from prodflow_core.problems import not_found
from sqlmodel import select

from prodflow_submitter import exactly, jobstore
from prodflow_submitter.campaigns import content_sha256
from prodflow_submitter.models import Campaign, SiteRow, campaign_number, utcnow
from prodflow_submitter.runtime import Runtime
from prodflow_submitter.schemas import OperationOut
from prodflow_submitter.sites import backend_of
from prodflow_submitter.submission import announce, exactly_path, next_pass, write_exactly

_log = logging.getLogger("prodflow.submitter.operations")
Doc = dict[str, Any]


@dataclass(frozen=True)
class JobScope:
    """Whose jobs an operation takes: a label's, or a campaign's (its labels' jobs of its id)."""

    labels: tuple[str, ...]
    campaign_id: str | None = None

    @classmethod
    def of_label(cls, label: str) -> JobScope:
        return cls((label,))

    @classmethod
    def of_campaign(cls, campaign: Campaign) -> JobScope:
        return cls(tuple(campaign.labels or [campaign.label]), campaign.public_id)

    def holds(self, doc: Doc) -> bool:
        """True if ``doc`` is one of this scope's jobs."""
        if self.campaign_id is not None:
            return doc.get("campaign_id") == self.campaign_id
        return doc.get("label") in self.labels


def _check_access(identity: Identity, docs: Iterable[Doc]) -> None:
    for experiment in sorted({str(d.get("experiment")) for d in docs}):
        identity.require_experiment(experiment)


async def select_jobs(
    runtime: Runtime, database: str, scope: JobScope, statuses: Sequence[str], job_ids: Sequence[str] | None
) -> tuple[list[Doc], list[str]]:
    """The scope's jobs in ``statuses``, or only ``job_ids`` of them; plus the ids skipped."""
    db = runtime.db(database)
    if job_ids is None:
        await runtime.counted_to_now(database)
        engine = runtime.counter.engine
        ids = [i for label in scope.labels for i, _ in await label_jobs(engine, database, label, statuses,
                                                                        scope.campaign_id)]  # fmt: skip
        found = await db.get_many(ids)
        return [d for i in ids if (d := found.get(i)) and scope.holds(d) and d.get("status") in statuses], []
    found = await db.get_many(list(dict.fromkeys(job_ids)))
    chosen = [d for d in found.values() if scope.holds(d) and d.get("status") in statuses]
    chosen_ids = {d["_id"] for d in chosen}
    return chosen, [i for i in job_ids if i not in chosen_ids]


async def cancel(
    runtime: Runtime, database: str, scope: JobScope, identity: Identity, job_ids: Sequence[str] | None, reason: str
) -> OperationOut:
    """Cancel the non-final jobs of a campaign or label (or the named ones): documents first, then backends."""
    db = runtime.db(database)
    docs, skipped = await select_jobs(runtime, database, scope, jobstore.non_final(), job_ids)
    _check_access(identity, docs)
    outcome = await jobstore.update_many(
        db, docs, jobstore.moving_to(jobdocs.CANCELLED, utc_now(), reason or f"cancelled by {identity.user}")
    )
    await _cancel_at_backends(runtime, outcome.written)
    cancelled = [d["_id"] for d in outcome.written]
    label = scope.labels[0] if scope.campaign_id is None else (outcome.written[0]["label"] if outcome.written else None)
    if cancelled:
        await runtime.events.emit(
            "jobs.cancelled", experiment=outcome.written[0].get("experiment"),
            data={"label": label, "database": database, "job_ids": cancelled, "by": identity.user, "reason": reason,
                  "whole": job_ids is None},
        )  # fmt: skip
    return OperationOut(label=label, database=database, job_ids=cancelled, skipped=[*skipped, *outcome.skipped])


async def _cancel_at_backends(runtime: Runtime, docs: list[Doc]) -> None:
    by_site: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        backend_id = (doc.get("backend") or {}).get("id")
        if backend_id:
            by_site[str(doc["site"])].append(str(backend_id))
    async with runtime.sessions() as session:
        sites = {name: await session.get(SiteRow, name) for name in by_site}
    for name, ids in by_site.items():
        site = sites[name]
        if site is None:
            _log.warning("cannot cancel %d jobs at unknown site %s", len(ids), name)
            continue
        try:
            await backend_of(site).cancel(ids)
        except Exception:
            # The documents are cancelled already; the monitor sees the backend state and leaves them be.
            _log.exception("site %s: cancelling %d jobs at the backend failed", name, len(ids))


async def retry(runtime: Runtime, database: str, label: str, identity: Identity,
                job_ids: Sequence[str] | None, reason: str) -> OperationOut:  # fmt: skip
    """Failed jobs back to ``waiting`` in the same pass, ``attempt + 1`` (as SNO+'s retry_failed.py)."""
    db = runtime.db(database)
    docs, skipped = await select_jobs(runtime, database, JobScope.of_label(label), sorted(jobdocs.RETRYABLE_STATUSES),
                                      job_ids)  # fmt: skip
    _check_access(identity, docs)
    outcome = await jobstore.update_many(
        db, docs, jobstore.moving_to(jobdocs.WAITING, utc_now(), reason or f"resubmitted by {identity.user}")
    )
    ids = [d["_id"] for d in outcome.written]
    if ids:
        await runtime.events.emit("jobs.resubmitted", experiment=outcome.written[0].get("experiment"),
                                  data={"label": label, "database": database, "job_ids": ids, "mode": "next_attempt",
                                        "by": identity.user})  # fmt: skip
        runtime.wake.set()
    return OperationOut(label=label, database=database, job_ids=ids, skipped=[*skipped, *outcome.skipped])


def _next_pass_doc(doc: Doc, pass_number: int, campaign_id: str, site: str, now: str, reason: str) -> Doc:
    new_id = jobdocs.job_id(doc["label"], doc["module"], doc["run"], doc["chunk"], pass_number)
    skip = {"_id", "_rev", "_conflicts"}
    return {
        **{k: v for k, v in doc.items() if k not in skip}, "_id": new_id, "pass": pass_number, "attempt": 1,
        "campaign_id": campaign_id, "site": site, "seed": jobdocs.job_seed(new_id), "backend": None,
        "status": jobdocs.WAITING, "parent": doc["_id"], "outputs": [],
        "history": [{"status": jobdocs.WAITING, "at": now, "reason": reason}], "created_at": now, "updated_at": now,
    }  # fmt: skip


async def resubmit_next_pass(
    runtime: Runtime, database: str, label: str, identity: Identity,
    job_ids: Sequence[str] | None, site_name: str | None, reason: str,
) -> OperationOut:  # fmt: skip
    """New documents, pass + 1, for the failed jobs of a label (``parent`` = the failed one), as a new campaign.

    Idempotent like a submission: the same failures resubmitted again give the same campaign (finished if an
    earlier attempt stopped in the middle), not one more pass.
    """
    db = runtime.db(database)
    docs, skipped = await select_jobs(runtime, database, JobScope.of_label(label), sorted(jobdocs.RETRYABLE_STATUSES),
                                      job_ids)  # fmt: skip
    if not docs:
        return OperationOut(label=label, database=database, job_ids=[], skipped=skipped)
    _check_access(identity, docs)
    row = await _resubmission_campaign(runtime, database, label, docs, site_name, identity)
    now = utc_now()
    new_docs = [
        _next_pass_doc(d, row.pass_number, row.public_id, row.site, now, reason or f"resubmission of {d['_id']}")
        for d in docs
    ]
    on_created = runtime.on_created
    created, _ = await jobstore.create_docs(
        db, new_docs, runtime.settings.bulk_chunk, (lambda made: on_created(database, made)) if on_created else None
    )
    entries = [(d["module"], d["run"], row.pass_number) for d in new_docs]
    await asyncio.to_thread(write_exactly, exactly_path(runtime, row.public_id), [exactly.render(entries)])
    async with runtime.sessions() as session:
        stored = await session.get(Campaign, row.id)
        assert stored is not None
        stored.state, stored.jobs, stored.updated_at = "created", len(new_docs), utcnow()
        stored.created_docs += created
        session.add(stored)
        await session.commit()
        row = stored
    await announce(runtime, row)
    ids = [d["_id"] for d in new_docs]
    event_id = f"evt-resubmitted-{row.public_id}"  # one event per resubmission, however often it is sent
    await runtime.events.emit("jobs.resubmitted", experiment=row.experiment, event_id=event_id,
                              data={"label": label, "database": database, "job_ids": ids, "mode": "next_pass",
                                    "pass": row.pass_number, "parents": [d["_id"] for d in docs],
                                    "campaign_id": row.public_id, "by": identity.user})  # fmt: skip
    runtime.wake.set()
    return OperationOut(label=label, database=database, job_ids=ids, skipped=skipped, campaign=row.public_id,
                        pass_number=row.pass_number)  # fmt: skip


async def _resubmission_campaign(
    runtime: Runtime, database: str, label: str, docs: list[Doc], site_name: str | None, identity: Identity
) -> Campaign:
    """The campaign of resubmitting ``docs``: the existing one for these very failures, else a new pass."""
    site = site_name or str(docs[0]["site"])
    fingerprint = content_sha256({"resubmit": sorted(d["_id"] for d in docs), "database": database, "site": site})
    parents = await _parent_campaigns(runtime, {str(d["campaign_id"]) for d in docs})
    async with runtime.sessions() as session:
        existing = (await session.exec(select(Campaign).where(Campaign.content_sha256 == fingerprint))).first()
        if existing is not None:
            return existing
        if await session.get(SiteRow, site) is None:
            raise not_found("Site", site)
        experiment = str(docs[0]["experiment"])
        row = Campaign(
            experiment=experiment, label=label, default_label=label, request_id=docs[0].get("request_id"),
            database=database, site=site, pass_number=await next_pass(session, experiment, database, {label}),
            kind="resubmission", parent_campaign_id=parents[0].id if parents else None, content_sha256=fingerprint,
            rat_v=str(docs[0].get("rat_v", "")), ratdb_tag=docs[0].get("ratdb_tag"),
            jobs_json=_merged_jobs_json(parents, docs), command_templates=_merged_templates(parents),
            labels=[label], created_by=identity.user,
        )  # fmt: skip
        session.add(row)
        await session.commit()
        return row


async def _parent_campaigns(runtime: Runtime, public_ids: set[str]) -> list[Campaign]:
    async with runtime.sessions() as session:
        rows = [await session.get(Campaign, campaign_number(p)) for p in sorted(public_ids)]
    return [r for r in rows if r is not None]


def _merged_jobs_json(parents: list[Campaign], docs: list[Doc]) -> dict[str, Any]:
    """The parents' module entries of the resubmitted modules (the command templates read t_run etc. there)."""
    modules = {str(d["module"]) for d in docs}
    entries: dict[str, dict[str, Any]] = {}
    for parent in parents:
        for entry in parent.jobs_json.get("modules", []):
            if entry["module"] in modules:
                entries.setdefault(entry["module"], {**entry, "label": docs[0]["label"]})
    rat_v = parents[0].jobs_json.get("rat_v") if parents else docs[0].get("rat_v")
    return {"rat_v": rat_v, "modules": list(entries.values())}


def _merged_templates(parents: list[Campaign]) -> dict[str, str]:
    templates: dict[str, str] = {}
    for parent in parents:
        for module, template in parent.command_templates.items():
            templates.setdefault(module, template)
    return templates
