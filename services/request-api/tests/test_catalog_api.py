"""``/api/catalog``: the seeded catalog, reading it, and admin edits that requests are checked against."""

from __future__ import annotations

from pathlib import Path

import pytest
from request_api_support import (
    ADMIN,
    ALICE,
    LEGEND_ONLY,
    MANAGER,
    READER,
    Api,
    fields,
    form,
    headers,
    make_settings,
    running,
)

pytestmark = pytest.mark.integration

CO60 = {
    "description": "Co-60 source in water",
    "event_modes": ["by_events", "run_by_run_events"],
    "kinds": ["production"],
    "command": "rat -q -s {seed} -r {run} -N {events} -x z={source_z} -o {output_dir}/{job_id}.root mac/{module}.mac",
    "template_params": {"source_z": 0},
    "default_ev_per_run": 5000,
}


async def test_seeded_experiments(api: Api) -> None:
    answer = await api.client.get("/api/catalog", headers=READER)
    experiments = {e["experiment"]: e for e in answer.json()}
    assert set(experiments) == {"snoplus", "legend"}
    assert experiments["snoplus"]["mailing_list"] == ["snoplus-vo-support@example.org"]
    assert "WaterBi214Run" in experiments["snoplus"]["modules"] and experiments["snoplus"]["runs"] == 1300
    only_legend = (await api.client.get("/api/catalog", headers=LEGEND_ONLY)).json()
    assert [e["experiment"] for e in only_legend] == ["legend"]
    assert (await api.client.get("/api/catalog/snoplus", headers=LEGEND_ONLY)).status_code == 403


async def test_module_with_its_command(api: Api) -> None:
    answer = await api.client.get("/api/catalog/snoplus/modules/WaterPmt_Betagammas", headers=READER)
    module = answer.json()
    assert answer.status_code == 200
    assert module["experiment"] == "snoplus" and module["name"] == "WaterPmt_Betagammas"
    assert module["command"].startswith("rat ") and "{radius}" in module["command"]
    assert module["event_modes"] == ["by_events"] and module["template_params"] == {"radius": 8500}
    names = [m["name"] for m in (await api.client.get("/api/catalog/legend/modules", headers=READER)).json()]
    assert names == sorted(names) and "l200-hpge-bulk-2vbb" in names
    missing = await api.client.get("/api/catalog/snoplus/modules/Nope", headers=READER)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")


async def test_admin_edits_modules(api: Api) -> None:
    path = "/api/catalog/snoplus/modules/WaterCo60Source"
    refused = await api.client.put(path, json=CO60, headers=MANAGER)
    assert refused.status_code == 403 and refused.json()["required_role"] == "admin"
    created = await api.client.put(path, json=CO60, headers=ADMIN)
    assert created.status_code == 201 and created.json()["default_ev_per_run"] == 5000
    filed = await api.client.post(
        "/api/requests/preview", headers=ALICE, json=form(modules=[{"module": "WaterCo60Source", "n_ev": 12000}])
    )
    assert filed.status_code == 200 and filed.json()["jobs"] == 3
    assert filed.json()["jobs_json"]["modules"][0]["template"] == {"source_z": 0}
    replaced = await api.client.put(path, json={**CO60, "event_modes": ["run_by_run_events"]}, headers=ADMIN)
    assert replaced.status_code == 200
    refused_now = await api.client.post(
        "/api/requests/preview", headers=ALICE, json=form(modules=[{"module": "WaterCo60Source", "n_ev": 12000}])
    )
    assert fields(refused_now.json()) == {"modules.0.run_numbers": "runs_required"}
    assert (await api.client.delete(path, headers=ADMIN)).status_code == 204
    assert (await api.client.get(path, headers=READER)).status_code == 404
    assert (await api.client.delete(path, headers=ADMIN)).status_code == 404


async def test_module_specs_are_validated(api: Api) -> None:
    bad = {**CO60, "command": "rat {nonsense}", "event_modes": ["sideways"], "colour": "red"}
    answer = await api.client.put("/api/catalog/snoplus/modules/Bad", json=bad, headers=ADMIN)
    assert answer.status_code == 422
    assert fields(answer.json()) == {"event_modes.0": "enum", "colour": "extra_forbidden"}
    placeholder = await api.client.put(
        "/api/catalog/snoplus/modules/Bad", json={**CO60, "command": "rat {nonsense}"}, headers=ADMIN
    )
    assert placeholder.status_code == 422 and "nonsense" in placeholder.json()["detail"]
    quoted = await api.client.put(
        "/api/catalog/snoplus/modules/Bad", json={**CO60, "command": 'rat -l "{label}"'}, headers=ADMIN
    )
    assert quoted.status_code == 422 and "inside quotes" in quoted.json()["detail"]
    bad_name = await api.client.put("/api/catalog/snoplus/modules/bad%20name", json=CO60, headers=ADMIN)
    assert bad_name.status_code == 422 and fields(bad_name.json()) == {"path.module": "string_pattern_mismatch"}


async def test_run_list(api: Api) -> None:
    page = (
        await api.client.get(
            "/api/catalog/snoplus/runs", params={"first": 100298, "last": 100301, "limit": 3}, headers=READER
        )
    ).json()
    assert page["total"] == 4
    assert page["items"] == [
        {"run": 100298, "conditions": "water_2017"},
        {"run": 100299, "conditions": "water_2017"},
        {"run": 100300, "conditions": "water_2018"},
    ]
    runs = {
        "runs": [{"run": 400001, "conditions": "te_2026"}],
        "spans": [{"first": 400100, "last": 400104, "conditions": "te_2026"}],
    }
    assert (await api.client.put("/api/catalog/snoplus/runs", json=runs, headers=MANAGER)).status_code == 403
    written = await api.client.put("/api/catalog/snoplus/runs", json=runs, headers=ADMIN)
    assert written.json() == {"runs": 6}
    ok = await api.client.post(
        "/api/requests/preview",
        headers=ALICE,
        json=form(modules=[{"module": "WaterBi214Run", "run_ranges": [{"first": 400000, "last": 400102}]}]),
    )
    assert ok.status_code == 200 and ok.json()["jobs_json"]["modules"][0]["run_numbers"] == [
        400001,
        400100,
        400101,
        400102,
    ]
    assert ok.json()["modules"][0]["conditions"] == {"te_2026": 4}
    assert (await api.client.delete("/api/catalog/snoplus/runs/400001", headers=ADMIN)).status_code == 204
    gone = await api.client.post(
        "/api/requests/preview",
        headers=ALICE,
        json=form(modules=[{"module": "WaterBi214Run", "run_numbers": [400001]}]),
    )
    assert fields(gone.json()) == {"modules.0.run_numbers": "unknown_runs"}
    endless = {"spans": [{"first": 1, "last": 10**18}]}
    too_many = await api.client.put("/api/catalog/snoplus/runs", json=endless, headers=ADMIN)
    assert too_many.status_code == 422 and fields(too_many.json()) == {"body": "value_error"}
    replaced = await api.client.put(
        "/api/catalog/legend/runs", json={"runs": [{"run": 7}], "replace": True}, headers=ADMIN
    )
    assert replaced.json() == {"runs": 1}
    assert (await api.client.get("/api/catalog/legend", headers=READER)).json()["runs"] == 1


async def test_run_list_writes_take_json_types_only(api: Api) -> None:
    """``"replace": 0`` is no boolean and ``"7"`` no run number: 422, and nothing is written or dropped."""
    before = (await api.client.get("/api/catalog/snoplus", headers=READER)).json()["runs"]
    for body, field in (
        ({"replace": 0}, "replace"),
        ({"replace": "true"}, "replace"),
        ({"runs": [{"run": "7"}], "replace": True}, "runs.0.run"),
        ({"spans": [{"first": True, "last": 2}], "replace": True}, "spans.0.first"),
    ):
        answer = await api.client.put("/api/catalog/snoplus/runs", json=body, headers=ADMIN)
        assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
        assert list(fields(answer.json())) == [field], answer.json()
    assert (await api.client.get("/api/catalog/snoplus", headers=READER)).json()["runs"] == before > 0


async def test_new_experiment_and_mailing_list(api: Api) -> None:
    bad = await api.client.put("/api/catalog/juno", json={"mailing_list": ["nope"]}, headers=ADMIN)
    assert bad.status_code == 422 and fields(bad.json()) == {"mailing_list.0": "value_error"}
    created = await api.client.put(
        "/api/catalog/juno", json={"description": "JUNO", "mailing_list": ["prod@juno.example.org"]}, headers=ADMIN
    )
    assert created.status_code == 201 and created.json()["modules"] == []
    changed = await api.client.put("/api/catalog/juno", json={"description": "JUNO (IHEP)"}, headers=ADMIN)
    assert changed.status_code == 200 and changed.json()["mailing_list"] == []


async def test_admin_edits_survive_a_restart(tmp_path: Path, couch_url: str) -> None:
    settings = make_settings(tmp_path, couch_url, None)
    async with running(settings) as api:
        assert (
            await api.client.delete("/api/catalog/snoplus/modules/TeLoadedBipo212", headers=ADMIN)
        ).status_code == 204
    async with running(settings.model_copy(update={"events_db": settings.events_db + "-2"})) as api:
        gone = await api.client.get("/api/catalog/snoplus/modules/TeLoadedBipo212", headers=READER)
        assert gone.status_code == 404  # the seed file does not bring it back


async def test_custom_seed_file(tmp_path: Path, couch_url: str) -> None:
    seed = tmp_path / "catalog.yaml"
    seed.write_text(
        "experiments:\n  juno:\n    modules:\n      IBD:\n        event_modes: [by_events]\n"
        "        command: junosim -n {events}\n        default_ev_per_run: 1000\n"
    )
    settings = make_settings(tmp_path, couch_url, None).model_copy(update={"catalog_seed": seed})
    async with running(settings) as api:
        juno = headers("jun", "requester", experiments=("juno",))
        assert [e["experiment"] for e in (await api.client.get("/api/catalog", headers=juno)).json()] == ["juno"]
        assert (await api.client.get("/api/catalog", headers=READER)).json() == []
        body = form(experiment="juno", modules=[{"module": "IBD", "n_ev": 2500}])
        answer = await api.client.post("/api/requests/preview", headers=juno, json=body)
        assert answer.json()["jobs"] == 3 and answer.json()["jobs_json"]["modules"][0]["ev_per_run"] == 1000
        assert (await api.client.post("/api/requests/preview", headers=ALICE, json=body)).status_code == 403
