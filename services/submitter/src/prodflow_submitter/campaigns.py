"""Expanding a jobs.json into job documents (FORMATS.md): pure functions over plain data, no I/O.

One document per (label, module, run, chunk, pass), with the deterministic ``_id`` of
:func:`prodflow_core.jobdocs.job_id`, so expanding the same file twice gives the same documents.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prodflow_core import jobdocs
from prodflow_core.jobs_json import EventMode, dumps, event_mode, module_job_count
from prodflow_core.problems import FieldError

from prodflow_submitter.exactly import PassEntries
from prodflow_submitter.schemas import JobsFile, ModuleEntry

SOFTWARE_OF_EXPERIMENT = {"snoplus": "rat", "legend": "remage"}
MAX_CAMPAIGN_JOBS = 1_000_000
"""At most this many jobs per campaign: counted before expanding, so ``n_runs: 10**18`` is a 422, not a hang."""


class ExpansionError(ValueError):
    """The jobs.json cannot be expanded; ``errors`` names each bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class CampaignPlan:
    """What a submission is: the file, where it goes and which pass; everything :func:`expand` needs."""

    jobs: JobsFile
    experiment: str
    default_label: str | None
    database: str
    site: str
    pass_number: int
    campaign_id: str
    request_id: str | None = None
    run_list: Sequence[int] | None = None
    ratdb_tag: str | None = None


@dataclass
class Expansion:
    """The job documents of a plan, its .exactly entries and a summary per module."""

    exactly: PassEntries
    docs: list[dict[str, Any]] = field(default_factory=list)
    modules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        """How many job documents the plan makes."""
        return sum(int(m["jobs"]) for m in self.modules)

    @property
    def labels(self) -> list[str]:
        return sorted({m["label"] for m in self.modules})


def content_sha256(parts: dict[str, Any]) -> str:
    """The SHA-256 of a submission's content (canonical JSON), its idempotency fingerprint."""
    return hashlib.sha256(dumps(parts)).hexdigest()


def entry_label(entry: ModuleEntry, plan: CampaignPlan) -> str | None:
    """A module's label: its own, else the submission's, else the file's."""
    return entry.label or plan.default_label or plan.jobs.label


def _split(total: int, per_job: int) -> list[int]:
    n = math.ceil(total / per_job)
    return [per_job] * (n - 1) + [total - per_job * (n - 1)]


def _unique(runs: Sequence[int]) -> list[int]:
    return list(dict.fromkeys(runs))


def job_slots(entry: ModuleEntry, run_list: Sequence[int] | None) -> Iterator[tuple[int, int, int | None]]:
    """``(run, chunk, events)`` of each job of one module entry, in order."""
    fields = entry.model_dump(exclude_none=True)
    mode = event_mode(fields, has_run_list=run_list is not None)
    runs = _unique(entry.run_numbers if entry.run_numbers is not None else (run_list or []))
    if mode is EventMode.BY_TIME:
        yield from ((run, 0, None) for run in range(1, int(entry.n_runs or 0) + 1))
    elif mode is EventMode.BY_EVENTS:
        assert entry.n_ev is not None and entry.ev_per_run is not None
        yield from ((run, 0, events) for run, events in enumerate(_split(entry.n_ev, entry.ev_per_run), start=1))
    elif mode is EventMode.RUN_BY_RUN:
        yield from ((run, chunk, None) for run in runs for chunk in range(entry.n_runs or 1))
    else:
        assert entry.n_ev is not None and entry.ev_per_run is not None
        chunks = _split(entry.n_ev, entry.ev_per_run)
        yield from ((run, chunk, events) for run in runs for chunk, events in enumerate(chunks))


def check_plan(plan: CampaignPlan) -> list[FieldError]:
    """Every reason ``plan`` cannot be expanded (empty: it can)."""
    errors: list[FieldError] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(plan.jobs.modules):
        where = f"jobs.modules.{index}"
        label = entry_label(entry, plan)
        if label is None:
            errors.append(FieldError(field=f"{where}.label", message="no label: give one here, in jobs.label or "
                                     "in the submission", type="label_required"))  # fmt: skip
        elif (label, entry.module) in seen:
            errors.append(FieldError(field=f"{where}.module", message=f"{entry.module!r} with label {label!r} is "
                                     f"already entry {seen[label, entry.module]}: their jobs would share ids",
                                     type="duplicate_module"))  # fmt: skip
        else:
            seen[label, entry.module] = index
        mode = event_mode(entry.model_dump(exclude_none=True), has_run_list=True)
        if mode.uses_runs and not (entry.run_numbers or plan.run_list):
            errors.append(FieldError(field=f"{where}.run_numbers", message="a run-by-run module needs run_numbers "
                                     "or a run_list at submission", type="runs_required"))  # fmt: skip
    if not errors:
        jobs = sum(module_job_count(e.model_dump(exclude_none=True), plan.run_list) for e in plan.jobs.modules)
        if jobs > MAX_CAMPAIGN_JOBS:
            errors.append(FieldError(field="jobs.modules", message=f"{jobs} jobs: a campaign makes at most "
                                     f"{MAX_CAMPAIGN_JOBS}", type="too_many_jobs"))  # fmt: skip
    return errors


def summarise(plan: CampaignPlan) -> Expansion:
    """The .exactly entries and per-module counts of ``plan`` without building its documents."""
    errors = check_plan(plan)
    if errors:
        raise ExpansionError(errors)
    result = Expansion(PassEntries(plan.pass_number))
    for entry in plan.jobs.modules:
        count = events_total = 0
        for run, _chunk, events in job_slots(entry, plan.run_list):
            result.exactly.add(entry.module, run)
            count += 1
            events_total += events or 0
        result.modules.append({"module": entry.module, "label": entry_label(entry, plan), "jobs": count,
                               "events": events_total})  # fmt: skip
    return result


def job_docs(plan: CampaignPlan, now: str) -> Iterator[dict[str, Any]]:
    """The job documents of a checked ``plan`` (status ``waiting``), one at a time."""
    ratdb_tag = plan.ratdb_tag if plan.ratdb_tag is not None else plan.jobs.ratdb_tag
    software = {"name": SOFTWARE_OF_EXPERIMENT.get(plan.experiment, "rat"), "version": plan.jobs.rat_v}
    history = [{"status": jobdocs.WAITING, "at": now, "reason": f"created by {plan.campaign_id}"}]
    for entry in plan.jobs.modules:
        label = entry_label(entry, plan)
        assert label is not None
        jobdocs.job_id(label, entry.module, 0, 0, plan.pass_number)  # checks label and module once per entry
        prefix, suffix = f"job:{label}:{entry.module}:", f":p{plan.pass_number}"
        for run, chunk, events in job_slots(entry, plan.run_list):
            doc_id = f"{prefix}{run}:{chunk}{suffix}"
            yield {
                "_id": doc_id, "type": "job", "experiment": plan.experiment, "label": label,
                "request_id": plan.request_id, "campaign_id": plan.campaign_id, "module": entry.module,
                "run": run, "chunk": chunk, "pass": plan.pass_number, "attempt": 1, "rat_v": plan.jobs.rat_v,
                "ratdb_tag": ratdb_tag, "template": dict(entry.template), "priority": entry.priority,
                "events": events, "seed": jobdocs.job_seed(doc_id), "site": plan.site, "backend": None,
                "status": jobdocs.WAITING, "parent": None, "outputs": [], "software": software,
                "history": history, "created_at": now, "updated_at": now,
            }  # fmt: skip


def expand(plan: CampaignPlan, now: str) -> Expansion:
    """The job documents of ``plan``, its .exactly entries and module counts, or :class:`ExpansionError`."""
    result = summarise(plan)
    result.docs = list(job_docs(plan, now))
    return result
