"""Each validation rule of a production request, over HTTP: the problem+json names each bad field."""

from __future__ import annotations

from typing import Any

import pytest
from request_api_support import ALICE, BOB, Api, fields, form, headers

pytestmark = pytest.mark.integration

ANYWHERE = headers("alice", "requester", experiments=("*",))
WATER = {"module": "WaterBi214Run", "n_runs": 1, "run_numbers": [100151]}

CASES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "unknown module": ({"modules": [{"module": "WaterBi214", "n_ev": 10}]}, {"modules.0.module": "unknown_module"}),
    "event mode not of the module": (
        {"modules": [{"module": "TeLoadedBipo212", "n_ev": 1000, "ev_per_run": 100}]},
        {"modules.0": "event_mode_mismatch"},
    ),
    "run-by-run without runs": (
        {"modules": [{"module": "WaterBi214Run", "n_runs": 1}]},
        {"modules.0.run_numbers": "runs_required"},
    ),
    "run-by-run with unknown runs": (
        {"modules": [{"module": "WaterBi214Run", "run_numbers": [100151, 7, 8]}]},
        {"modules.0.run_numbers": "unknown_runs"},
    ),
    "run range without known runs": (
        {"modules": [{"module": "WaterBi214Run", "run_ranges": [{"first": 10, "last": 20}]}]},
        {"modules.0.run_ranges.0": "unknown_runs"},
    ),
    "generic with runs": (
        {"modules": [{"module": "WaterPmt_Betagammas", "n_ev": 100, "run_numbers": [100151]}]},
        {"modules.0.run_numbers": "generic_with_runs"},
    ),
    "label pattern": ({"label": "-bad label!"}, {"label": "string_pattern_mismatch"}),
    "label too short": ({"label": "ab"}, {"label": "string_pattern_mismatch"}),
    "module label pattern": ({"modules": [{**WATER, "label": "a b"}]}, {"modules.0.label": "string_pattern_mismatch"}),
    "invalid e-mail": (
        {"contacts": ["alice@snolab.example.org", "not-an-address"]},
        {"contacts.1": "value_error"},
    ),
    "no contacts": ({"contacts": []}, {"contacts": "too_short"}),
    "events <= 0": (
        {"modules": [{"module": "WaterPmt_Betagammas", "n_ev": 0, "ev_per_run": -5}]},
        {"modules.0.n_ev": "greater_than", "modules.0.ev_per_run": "greater_than"},
    ),
    "runs <= 0": (
        {"modules": [{"module": "WaterBi214Run", "run_numbers": [-1]}]},
        {"modules.0.run_numbers.0": "greater_than"},
    ),
    "unknown top-level field": ({"colour": "blue"}, {"colour": "extra_forbidden"}),
    "unknown module field": ({"modules": [{**WATER, "macro": "x.mac"}]}, {"modules.0.macro": "extra_forbidden"}),
    "unknown template parameter": (
        {"modules": [{"module": "WaterPmt_Betagammas", "n_ev": 100, "template": {"radius": 1, "height": 2}}]},
        {"modules.0.template.height": "unknown_template_param"},
    ),
    "missing template parameter": (
        {"modules": [{"module": "ScintFit_2p2Co60Source", "n_ev": 100}]},
        {"modules.0.template": "missing_template_param"},
    ),
    "kind of the module": (
        {"kind": "processing"},
        {"modules.0.module": "kind_mismatch", "modules.1.module": "kind_mismatch"},
    ),
    "unknown experiment": ({"experiment": "dune"}, {"experiment": "unknown_experiment"}),
    "no modules": ({"modules": []}, {"modules": "too_short"}),
    "missing fields": ({"label": None, "rat_v": None}, {"label": "missing", "rat_v": "missing"}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_rule(api: Api, case: str) -> None:
    changes, expected = CASES[case]
    headers = ALICE if changes.get("experiment") != "dune" else ANYWHERE
    answer = await api.client.post("/api/requests", json=form(**changes), headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422 and problem["type"].endswith("/validation") and problem["instance"]
    assert fields(problem) == expected
    assert all(e["message"] for e in problem["errors"])
    for bad_field in expected:
        assert bad_field in problem["detail"]
    # nothing was stored, and the dry run refuses it the same way
    assert (await api.client.get("/api/requests", headers=ALICE)).json()["total"] == 0
    preview = await api.client.post("/api/requests/preview", json=form(**changes), headers=headers)
    assert preview.status_code == 422 and fields(preview.json()) == expected


async def test_label_already_used_by_another_request(api: Api) -> None:
    assert (await api.client.post("/api/requests", json=form(), headers=ALICE)).status_code == 201
    answer = await api.client.post("/api/requests", json=form(title="the same label"), headers=BOB)
    assert answer.status_code == 422
    problem = answer.json()
    assert fields(problem) == {"label": "label_taken"}
    assert "req-000001" in problem["errors"][0]["message"]
    # the label is per experiment: LEGEND may use it
    legend = form(experiment="legend", rat_v="rm-0.5", modules=[{"module": "l200-hpge-bulk-2vbb", "n_ev": 10}])
    assert (await api.client.post("/api/requests", json=legend, headers=ALICE)).status_code == 201
    # a draft renamed onto a used label is refused too, naming the field
    other = (await api.client.post("/api/requests", json=form(label="free_label"), headers=BOB)).json()
    renamed = await api.client.patch(f"/api/requests/{other['id']}", json={"label": form()["label"]}, headers=BOB)
    assert renamed.status_code == 422 and fields(renamed.json()) == {"label": "label_taken"}


async def test_all_bad_fields_at_once(api: Api) -> None:
    body = form(
        modules=[
            {"module": "NoSuch", "n_ev": 5},
            {"module": "WaterBi214Run", "run_numbers": [5]},
            {"module": "TeLoadedBipo212", "n_ev": 100},
        ]
    )
    answer = await api.client.post("/api/requests", json=body, headers=ALICE)
    assert fields(answer.json()) == {
        "modules.0.module": "unknown_module",
        "modules.1.run_numbers": "unknown_runs",
        "modules.2": "event_mode_mismatch",
    }
