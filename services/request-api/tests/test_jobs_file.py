"""Checking requests against the catalog and expanding them into jobs.json, without HTTP."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from prodflow_core.jobs_json import count_jobs
from prodflow_request_api.catalog import CatalogView, load_seed, runs_of
from prodflow_request_api.jobs_file import build_jobs_file, check_request, expand_runs, run_span, summarise
from prodflow_request_api.schemas import ModuleEntry, RequestForm

SEED = load_seed()


def snoplus() -> CatalogView:
    seed = SEED.experiments["snoplus"]
    runs = {run.run: run.conditions for run in runs_of(seed.runs)}
    return CatalogView("snoplus", seed.modules, runs, tuple(seed.mailing_list))


def request(*modules: dict[str, Any], **top: Any) -> RequestForm:
    body: dict[str, Any] = {
        "experiment": "snoplus",
        "title": "t",
        "rat_v": "7.0.15",
        "label": "2026-11_test_v1",
        "contacts": ["alice@snolab.example.org"],
        "modules": list(modules),
        **top,
    }
    return RequestForm.model_validate(body)


def errors_of(form: RequestForm) -> dict[str, str]:
    return {e.field: e.type for e in check_request(form, snoplus())}


def test_the_formats_example_expands_exactly() -> None:
    form = request(
        {"module": "TeLoadedBipo212", "t_run": 365, "t_format": "day", "n_runs": 565},
        {
            "module": "WaterPmt_Betagammas",
            "n_ev": 985000000,
            "ev_per_run": 290000,
            "template": {"radius": 7250},
            "label": "WaterData_paper",
        },
        {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100152, 100151], "priority": 100},
        {"module": "WaterN16sourceRun", "n_ev": 210000, "ev_per_run": 35000, "run_numbers": [100151, 100152]},
        contacts=["alice@snolab.example.org", "bob@snolab.example.org"],
    )
    assert check_request(form, snoplus()) == []
    jobs = build_jobs_file(form, snoplus(), "req-000042")
    assert jobs.document == {
        "format": "prodflow.jobs/1",
        "request_id": "req-000042",
        "experiment": "snoplus",
        "kind": "production",
        "label": "2026-11_test_v1",
        "contacts": ["alice@snolab.example.org", "bob@snolab.example.org"],
        "ratdb_tag": None,
        "rat_v": "7.0.15",
        "modules": [
            {"module": "TeLoadedBipo212", "t_run": 365, "t_format": "day", "n_runs": 565},
            {
                "module": "WaterPmt_Betagammas",
                "n_ev": 985000000,
                "ev_per_run": 290000,
                "template": {"radius": 7250},
                "label": "WaterData_paper",
            },
            {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100151, 100152], "priority": 100},
            {"module": "WaterN16sourceRun", "n_ev": 210000, "ev_per_run": 35000, "run_numbers": [100151, 100152]},
        ],
    }
    assert jobs.jobs == count_jobs(jobs.document) == 565 + 3397 + 2 + 12
    assert jobs.sha256 == hashlib.sha256(jobs.content).hexdigest()
    assert json.loads(jobs.content) == jobs.document


def test_bytes_are_sorted_compact_and_repeatable() -> None:
    form = request({"module": "WaterBi214Run", "run_numbers": [100200, 100100, 100200]})
    first = build_jobs_file(form, snoplus(), "req-000001").content
    again = build_jobs_file(
        request({"run_numbers": [100100, 100200], "module": "WaterBi214Run"}), snoplus(), "req-000001"
    ).content
    assert first == again
    assert first.endswith(b"}\n") and b", " not in first and b": " not in first
    text = first.decode()
    assert text.index('"contacts"') < text.index('"experiment"') < text.index('"format"') < text.index('"modules"')
    assert json.loads(first)["modules"][0]["run_numbers"] == [100100, 100200]


def test_catalog_defaults_are_filled_in() -> None:
    form = request(
        {"module": "ScintFit_2p2Tl208", "n_ev": 25000}, {"module": "WaterBi214Run", "run_numbers": [100100]}, priority=7
    )
    modules = build_jobs_file(form, snoplus(), None).document["modules"]
    assert modules[0] == {"module": "ScintFit_2p2Tl208", "n_ev": 25000, "ev_per_run": 10000, "priority": 7}
    assert modules[1] == {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100100], "priority": 7}
    template = build_jobs_file(request({"module": "WaterPmt_Betagammas", "n_ev": 10}), snoplus(), None)
    assert template.document["modules"][0]["template"] == {"radius": 8500}
    assert template.jobs == 1


def test_run_ranges_take_the_runs_of_the_run_list() -> None:
    form = request(
        {"module": "WaterBi214Run", "run_ranges": [{"first": 100598, "last": 250001}], "run_numbers": [100000]}
    )
    assert check_request(form, snoplus()) == []
    jobs = build_jobs_file(form, snoplus(), None)
    assert jobs.document["modules"][0]["run_numbers"] == [100000, 100598, 100599, 250000, 250001]
    assert run_span(form) == (100000, 250001)
    summary = summarise(jobs, snoplus())
    assert summary[0]["conditions"] == {"partial_fill_2020": 2, "water_2017": 1, "water_2018": 2}
    assert summary[0]["mode"] == "run_by_run" and summary[0]["jobs"] == 5


def test_expand_runs_uses_sorted_known_runs() -> None:
    entry = ModuleEntry(module="M", run_ranges=[{"first": 5, "last": 7}, {"first": 20, "last": 30}])  # type: ignore[list-item]
    assert expand_runs(entry, [1, 5, 6, 8, 25, 31]) == [5, 6, 25]


def test_unknown_module() -> None:
    errors = check_request(request({"module": "NoSuchMacro", "n_ev": 5}), snoplus())
    assert [(e.field, e.type) for e in errors] == [("modules.0.module", "unknown_module")]
    assert "WaterBi214Run" in errors[0].message


def test_event_mode_that_does_not_match_the_module() -> None:
    assert errors_of(request({"module": "TeLoadedBipo212", "n_ev": 100})) == {"modules.0": "event_mode_mismatch"}
    assert errors_of(request({"module": "WaterPmt_Betagammas", "t_run": 1, "t_format": "day", "n_runs": 3})) == {
        "modules.0": "event_mode_mismatch"
    }


def test_run_by_run_without_runs() -> None:
    assert errors_of(request({"module": "WaterBi214Run", "n_runs": 1})) == {"modules.0.run_numbers": "runs_required"}
    assert errors_of(request({"module": "WaterN16sourceRun", "n_ev": 10})) == {"modules.0.run_numbers": "runs_required"}
    assert errors_of(request({"module": "WaterBi214Run", "run_numbers": []})) == {
        "modules.0.run_numbers": "runs_required"
    }


def test_run_by_run_with_unknown_runs() -> None:
    errors = check_request(request({"module": "WaterBi214Run", "run_numbers": [100100, 99, 98, 100600]}), snoplus())
    assert [(e.field, e.type) for e in errors] == [("modules.0.run_numbers", "unknown_runs")]
    assert "98, 99, 100600" in errors[0].message
    ranged = errors_of(request({"module": "WaterBi214Run", "run_ranges": [{"first": 1, "last": 50}]}))
    assert ranged == {"modules.0.run_ranges.0": "unknown_runs"}


def test_generic_module_with_runs() -> None:
    assert errors_of(request({"module": "WaterPmt_Betagammas", "n_ev": 10, "run_numbers": [100100]})) == {
        "modules.0.run_numbers": "generic_with_runs"
    }
    assert errors_of(
        request({"module": "WaterPmt_Betagammas", "n_ev": 10, "run_ranges": [{"first": 1, "last": 2}]})
    ) == {"modules.0.run_ranges": "generic_with_runs"}


def test_template_keys_must_match_the_catalog() -> None:
    assert errors_of(request({"module": "WaterPmt_Betagammas", "n_ev": 10, "template": {"radius": 1, "z": 2}})) == {
        "modules.0.template.z": "unknown_template_param"
    }
    assert errors_of(request({"module": "ScintFit_2p2Co60Source", "n_ev": 10})) == {
        "modules.0.template": "missing_template_param"
    }


def test_kind_and_software_version_must_fit_the_module() -> None:
    assert errors_of(request({"module": "Processing_Physics", "run_numbers": [100100]})) == {
        "modules.0.module": "kind_mismatch"
    }
    old = request({"module": "TeLoadedBipo212", "t_run": 1, "t_format": "day", "n_runs": 1}, rat_v="6.18.9")
    assert errors_of(old) == {"modules.0.module": "module_version"}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"module": "TeLoadedBipo212", "t_run": 1}, {"modules.0.t_format": "missing", "modules.0.n_runs": "missing"}),
        ({"module": "WaterPmt_Betagammas", "n_ev": 10, "n_runs": 3}, {"modules.0.n_runs": "field_not_allowed"}),
        ({"module": "TeLoadedBipo212", "t_run": 1, "n_ev": 4}, {"modules.0": "ambiguous_event_mode"}),
    ],
)
def test_fields_of_the_event_mode(entry: dict[str, Any], expected: dict[str, str]) -> None:
    assert errors_of(request(entry)) == expected


def test_the_same_module_twice_with_one_label() -> None:
    form = request({"module": "WaterPmt_Betagammas", "n_ev": 10}, {"module": "WaterPmt_Betagammas", "n_ev": 20})
    assert errors_of(form) == {"modules.1.module": "duplicate_module"}
    relabelled = request(
        {"module": "WaterPmt_Betagammas", "n_ev": 10},
        {"module": "WaterPmt_Betagammas", "n_ev": 20, "label": "other_label"},
    )
    assert errors_of(relabelled) == {}


def test_every_bad_entry_is_named() -> None:
    form = request(
        {"module": "NoSuchMacro", "n_ev": 5},
        {"module": "WaterBi214Run", "run_numbers": [1]},
        {"module": "WaterPmt_Betagammas", "n_ev": 10, "run_numbers": [100100]},
    )
    assert errors_of(form) == {
        "modules.0.module": "unknown_module",
        "modules.1.run_numbers": "unknown_runs",
        "modules.2.run_numbers": "generic_with_runs",
    }


def test_the_submitter_accepts_it_and_counts_the_same_jobs() -> None:
    """Contract with the reader of jobs.json: its model takes the file, and it expands as many jobs as we count."""
    schemas = pytest.importorskip("prodflow_submitter.schemas")
    campaigns = pytest.importorskip("prodflow_submitter.campaigns")
    form = request(
        {"module": "TeLoadedBipo212", "t_run": 365, "t_format": "day", "n_runs": 5},
        {"module": "WaterPmt_Betagammas", "n_ev": 985000, "ev_per_run": 290000, "label": "WaterData_paper"},
        {"module": "WaterBi214Run", "n_runs": 2, "run_ranges": [{"first": 100151, "last": 100153}]},
        {"module": "WaterN16sourceRun", "n_ev": 210000, "run_numbers": [100151, 100152]},
        ratdb_tag="frozen_2026_11",
        priority=50,
    )
    jobs = build_jobs_file(form, snoplus(), "req-000042")
    parsed = schemas.JobsFile.model_validate(json.loads(jobs.content))
    slots = sum(len(list(campaigns.job_slots(entry, None))) for entry in parsed.modules)
    assert slots == jobs.jobs == 5 + 4 + 6 + 12
