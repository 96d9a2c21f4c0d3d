"""Expanding jobs.json into job documents: the four event modes, labels, ids, events per job."""

from __future__ import annotations

from typing import Any

import pytest
from prodflow_core.jobs_json import count_jobs
from prodflow_submitter.campaigns import CampaignPlan, ExpansionError, expand, job_slots
from prodflow_submitter.schemas import JobsFile, ModuleEntry
from pydantic import ValidationError

FORMATS_EXAMPLE: dict[str, Any] = {
    "rat_v": "7.0.15",
    "modules": [
        {"module": "TeLoadedBipo212", "t_run": 365, "t_format": "day", "n_runs": 5},
        {"module": "WaterPmt_Betagammas", "n_ev": 985000, "ev_per_run": 290000, "template": {"radius": 7250},
         "label": "WaterData_paper"},
        {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100151, 100152], "priority": 100},
        {"module": "WaterN16sourceRun", "n_ev": 210000, "ev_per_run": 35000, "run_numbers": [100151, 100152]},
    ],
}  # fmt: skip


def _plan(jobs: dict[str, Any], **kw: Any) -> CampaignPlan:
    fields: dict[str, Any] = {"experiment": "snoplus", "default_label": "2026-11_test", "database": "data-production",
                              "site": "local", "pass_number": 1, "campaign_id": "camp-000001", **kw}  # fmt: skip
    return CampaignPlan(jobs=JobsFile.model_validate(jobs), **fields)


def test_formats_example_expands_to_one_document_per_job() -> None:
    expansion = expand(_plan(FORMATS_EXAMPLE), "2026-11-25T10:00:00Z")
    per_module = {m["module"]: m["jobs"] for m in expansion.modules}
    assert per_module == {"TeLoadedBipo212": 5, "WaterPmt_Betagammas": 4, "WaterBi214Run": 2, "WaterN16sourceRun": 12}
    assert len(expansion.docs) == count_jobs(FORMATS_EXAMPLE) == 23
    assert len({d["_id"] for d in expansion.docs}) == 23
    assert expansion.labels == ["2026-11_test", "WaterData_paper"]


def test_document_fields_follow_formats() -> None:
    docs = expand(_plan(FORMATS_EXAMPLE, request_id="req-000042"), "2026-11-25T10:00:00Z").docs
    n16 = [d for d in docs if d["module"] == "WaterN16sourceRun"]
    first = n16[0]
    assert first["_id"] == "job:2026-11_test:WaterN16sourceRun:100151:0:p1"
    assert [d["chunk"] for d in n16[:6]] == [0, 1, 2, 3, 4, 5] and n16[6]["run"] == 100152
    assert first["events"] == 35000 and first["status"] == "waiting" and first["attempt"] == 1
    assert first["history"] == [{"status": "waiting", "at": "2026-11-25T10:00:00Z", "reason": "created by camp-000001"}]
    assert first["request_id"] == "req-000042" and first["campaign_id"] == "camp-000001"
    assert first["software"] == {"name": "rat", "version": "7.0.15"} and first["backend"] is None
    assert first["parent"] is None and first["outputs"] == [] and first["type"] == "job"
    pmt = [d for d in docs if d["module"] == "WaterPmt_Betagammas"]
    assert [d["run"] for d in pmt] == [1, 2, 3, 4] and [d["events"] for d in pmt] == [290000] * 3 + [115000]
    assert pmt[0]["label"] == "WaterData_paper" and pmt[0]["template"] == {"radius": 7250}
    bi = [d for d in docs if d["module"] == "WaterBi214Run"]
    assert bi[0]["priority"] == 100 and bi[0]["events"] is None


def test_same_plan_gives_same_ids_and_seeds() -> None:
    a = expand(_plan(FORMATS_EXAMPLE), "t1").docs
    b = expand(_plan(FORMATS_EXAMPLE), "t2").docs
    assert [(d["_id"], d["seed"]) for d in a] == [(d["_id"], d["seed"]) for d in b]
    assert len({d["seed"] for d in a}) == len(a)


def test_exactly_lists_each_module_run_pass_once() -> None:
    expansion = expand(_plan(FORMATS_EXAMPLE, pass_number=2), "t")
    assert ("WaterN16sourceRun", 100151, 2) in expansion.exactly
    assert len(expansion.exactly) == 5 + 4 + 2 + 2


def test_run_list_feeds_run_by_run_modules_without_runs() -> None:
    jobs = {"rat_v": "7", "modules": [{"module": "WaterBi214Run", "n_runs": 2}]}
    docs = expand(_plan(jobs, run_list=[300000, 300001, 300000]), "t").docs
    assert [(d["run"], d["chunk"]) for d in docs] == [(300000, 0), (300000, 1), (300001, 0), (300001, 1)]
    with pytest.raises(ExpansionError) as refused:
        expand(_plan(jobs), "t")
    assert refused.value.errors[0].field == "jobs.modules.0.run_numbers"


def test_missing_label_and_duplicate_module_are_named() -> None:
    jobs = {"rat_v": "7", "modules": [{"module": "A", "t_run": 1, "t_format": "day", "n_runs": 1},
                                      {"module": "A", "t_run": 2, "t_format": "day", "n_runs": 1}]}  # fmt: skip
    with pytest.raises(ExpansionError) as refused:
        expand(_plan(jobs), "t")
    assert [e.type for e in refused.value.errors] == ["duplicate_module"]
    with pytest.raises(ExpansionError) as no_label:
        expand(_plan(jobs, default_label=None), "t")
    assert {e.field for e in no_label.value.errors} == {"jobs.modules.0.label", "jobs.modules.1.label"}


@pytest.mark.parametrize(
    "entry",
    [
        {"module": "A", "t_run": 1, "n_ev": 5, "ev_per_run": 1},  # by time and by events at once
        {"module": "A", "n_ev": 5},  # by events without ev_per_run
        {"module": "A", "t_run": 1, "n_runs": 2},  # by time without t_format
        {"module": "A", "n_runs": 1, "colour": "red"},  # unknown field
    ],
)
def test_invalid_entries_are_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ModuleEntry.model_validate(entry)


def test_job_slots_of_by_time() -> None:
    entry = ModuleEntry.model_validate({"module": "A", "t_run": 1.5, "t_format": "hour", "n_runs": 3})
    assert list(job_slots(entry, None)) == [(1, 0, None), (2, 0, None), (3, 0, None)]


def test_summary_agrees_with_the_documents() -> None:
    from prodflow_submitter.campaigns import summarise

    plan = _plan(FORMATS_EXAMPLE, pass_number=3)
    summary, full = summarise(plan), expand(plan, "t")
    assert summary.jobs == len(full.docs) == 23 and list(summary.exactly) == list(full.exactly)
    assert summary.modules == full.modules and summary.docs == []


@pytest.mark.parametrize(
    "entry",
    [
        {"module": "A", "t_run": 1, "t_format": "day", "n_runs": 10**18},
        {"module": "A", "n_ev": 10**18, "ev_per_run": 1},
        {"module": "A", "n_ev": 10**12, "ev_per_run": 1, "run_numbers": [1, 2]},
    ],
)
def test_a_campaign_of_too_many_jobs_is_refused_before_expanding(entry: dict[str, Any]) -> None:
    from prodflow_submitter.campaigns import summarise

    with pytest.raises(ExpansionError) as refused:
        summarise(_plan({"rat_v": "7", "modules": [entry]}))
    assert [e.type for e in refused.value.errors] == ["too_many_jobs"]
