"""``/api/campaigns`` end to end: a real CouchDB-API server, the local backend running real processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prodflow_core.backends import BackendStatus, LocalBackend
from prodflow_core.counts import LISTING_INDEXES
from prodflow_core.jobdocs import job_output_dir
from prodflow_core.testing_sql import reads_of
from sqlalchemy import inspect
from submitter_support import (
    ADMIN,
    LEGEND_MANAGER,
    MANAGER,
    READER,
    Api,
    counted,
    eventually,
    headers,
    jobs_file,
    put_site,
    unique_label,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

LEGEND_READER = headers("lou", "reader", experiments=("legend",))


async def _post(api: Api, body: dict[str, Any], **kw: Any) -> Any:
    return await api.client.post("/api/campaigns", json=body, headers={**MANAGER, **kw.pop("headers", {})}, **kw)


async def test_upload_creates_documents_and_exactly_and_the_jobs_run(api: Api) -> None:
    site = await put_site(api, "here", max_running=1000, options={"max_running": 4})
    label = unique_label("Bi214")
    response = await _post(api, {"jobs": jobs_file(label), "site": "here"})
    assert response.status_code == 201, response.text
    campaign = response.json()
    assert campaign["jobs"] == 25 and campaign["created"] == 25 and campaign["pass"] == 1
    assert campaign["label"] == label and campaign["state"] == "created"
    assert response.headers["location"] == f"/api/campaigns/{campaign['id']}"

    docs = await api.jobs(label)
    assert len(docs) == 25 and {d["campaign_id"] for d in docs} == {campaign["id"]}
    exactly = (await api.client.get(f"/api/campaigns/{campaign['id']}/exactly", headers=READER)).text
    lines = exactly.splitlines()
    assert len(lines) == 10 + 5 and lines[0] == "TeLoadedBipo212 1 1" and lines[-1] == "WaterBi214Run 100009 1"
    assert lines == sorted(lines, key=lambda x: (x.split()[0], int(x.split()[1]), int(x.split()[2])))

    async def all_submitted() -> bool:
        return all(d["status"] == "submitted" and d["backend"]["id"] for d in await api.jobs(label))

    await eventually(all_submitted, what="all 25 jobs handed to the local backend")
    backend = LocalBackend.from_options(site["options"])
    docs = await api.jobs(label)
    ids = [d["backend"]["id"] for d in docs]

    async def all_completed() -> bool:
        return all(s.state == BackendStatus.COMPLETED for s in (await backend.status(ids)).values())

    await eventually(all_completed, timeout_s=60, what="all 25 jobs completed at the backend")
    bi = next(d for d in docs if d["module"] == "WaterBi214Run" and d["chunk"] == 1)
    out = job_output_dir(Path(site["options"]["output_root"]), bi["_id"])
    produced = out / f"{label}_WaterBi214Run_r{bi['run']}_s1_p1.out"
    assert produced.read_text() == f"WaterBi214Run {bi['run']} 1 {bi['seed']}\n"

    submitted = await api.events("jobs.submitted")
    assert sorted(i for e in submitted for i in e["data"]["job_ids"]) == sorted(d["_id"] for d in docs)
    assert submitted[0]["data"]["database"] == "data-production" and submitted[0]["data"]["site"] == "here"

    again = await _post(api, {"jobs": jobs_file(label), "site": "here"})
    assert again.status_code == 200 and again.json()["id"] == campaign["id"] and again.json()["created"] == 0
    assert len(await api.jobs(label)) == 25
    created_events = await api.events("campaign.created")
    assert len(created_events) == 1 and created_events[0]["data"]["jobs"] == 25
    assert created_events[0]["data"]["campaign_id"] == campaign["id"] and created_events[0]["experiment"] == "snoplus"

    await counted(api, f"/api/campaigns/{campaign['id']}", {"submitted": 25})


async def test_dry_run_shows_and_writes_nothing(api: Api) -> None:
    label = unique_label()
    response = await _post(api, {"jobs": jobs_file(label)}, params={"dry_run": "true"})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["dry_run"] is True and preview["jobs"] == 25 and preview["exactly_lines"] == 15
    assert preview["job_ids"][0] == f"job:{label}:WaterBi214Run:100000:0:p1"
    assert {m["module"]: m["jobs"] for m in preview["modules"]} == {"WaterBi214Run": 20, "TeLoadedBipo212": 5}
    assert "{seed}" in preview["command_templates"]["WaterBi214Run"]
    assert await api.jobs(label) == [] and await api.events("campaign.created") == []


async def test_refusals_are_problems_naming_fields(api: Api) -> None:
    label = unique_label()
    unknown_field = await _post(api, {"jobs": jobs_file(label), "colour": "red"})
    assert unknown_field.status_code == 422 and unknown_field.headers["content-type"] == "application/problem+json"
    assert unknown_field.json()["errors"][0]["field"] == "colour"

    no_command = jobs_file(label)
    no_command["modules"].append({"module": "NotInCatalog", "t_run": 1, "t_format": "day", "n_runs": 1})
    refused = await _post(api, {"jobs": no_command})
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["jobs.modules.2.module"]
    with_default = await _post(api, {"jobs": no_command, "command_template": "echo {module} {run}"}, headers=ADMIN)
    assert with_default.status_code == 201 and with_default.json()["jobs"] == 26

    bad_mode = await _post(api, {"jobs": {"rat_v": "7", "experiment": "snoplus", "label": label,
                                          "modules": [{"module": "X", "n_ev": 10}]}})  # fmt: skip
    assert bad_mode.status_code == 422 and bad_mode.json()["errors"][0]["field"].startswith("jobs.modules.0")
    no_site = await _post(api, {"jobs": jobs_file(label), "site": "nowhere"})
    assert no_site.status_code == 404
    no_experiment = await _post(api, {"jobs": {**jobs_file(label), "experiment": None}})
    assert no_experiment.status_code == 422 and no_experiment.json()["errors"][0]["field"] == "experiment"


async def test_roles_and_experiments(api: Api) -> None:
    body = {"jobs": jobs_file(unique_label())}
    assert (await api.client.post("/api/campaigns", json=body)).status_code == 401
    assert (await api.client.post("/api/campaigns", json=body, headers=READER)).status_code == 403
    forbidden = await api.client.post("/api/campaigns", json=body, headers=LEGEND_MANAGER)
    assert forbidden.status_code == 403 and "snoplus" in forbidden.json()["detail"]


async def test_idempotency_key(api: Api) -> None:
    await api.client.post("/api/sites/local/drain", headers=MANAGER)
    label = unique_label()
    first = await _post(api, {"jobs": jobs_file(label)}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    same = await _post(api, {"jobs": jobs_file(label)}, headers={"Idempotency-Key": "k-1"})
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    other = await _post(api, {"jobs": jobs_file(label, runs=3)}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")


async def test_passes_and_label_exactly(api: Api) -> None:
    await api.client.post("/api/sites/local/drain", headers=MANAGER)
    label = unique_label()
    first = (await _post(api, {"jobs": jobs_file(label, runs=2, per_run=1, by_time=0)})).json()
    second = await _post(api, {"jobs": jobs_file(label, runs=3, per_run=1, by_time=0), "pass_number": 2})
    assert first["pass"] == 1 and second.status_code == 201 and second.json()["pass"] == 2
    third = (await _post(api, {"jobs": jobs_file(label, runs=1, per_run=1, by_time=0)})).json()
    assert third["pass"] == 3  # no pass given: the next free one
    everything = await api.client.get(f"/api/labels/{label}/exactly", headers=READER)
    assert everything.text == ("WaterBi214Run 100000 1\nWaterBi214Run 100000 2\nWaterBi214Run 100000 3\n"
                               "WaterBi214Run 100001 1\nWaterBi214Run 100001 2\nWaterBi214Run 100002 2\n")  # fmt: skip
    one_pass = await api.client.get(f"/api/labels/{label}/exactly", params={"pass": 2}, headers=READER)
    assert one_pass.text == "WaterBi214Run 100000 2\nWaterBi214Run 100001 2\nWaterBi214Run 100002 2\n"
    ledger = api.app.state.runtime.counter.engine
    async with reads_of(ledger, "counted_job") as reads:
        await api.client.get(f"/api/labels/{label}/exactly", headers=READER)
    assert reads.seen
    for plan in await reads.plans():
        assert "ix_counted_job_experiment_label_status (database=? AND experiment=?" in plan, plan
    async with ledger.connect() as conn:
        names = await conn.run_sync(lambda sync: {ix["name"] for ix in inspect(sync).get_indexes("counted_job")})
    assert not names & set(LISTING_INDEXES)  # the job listings' own: this ledger lists no jobs, its counts write less
    assert (await api.client.get("/api/labels/nope_nope/exactly", headers=READER)).status_code == 404
    listed = (await api.client.get("/api/campaigns", params={"label": label}, headers=READER)).json()
    assert [c["pass"] for c in listed] == [3, 2, 1]
    assert [
        c["pass"] for c in (await api.client.get("/api/campaigns", params={"limit": 2}, headers=READER)).json()
    ] == [3, 2]
    async with reads_of(api.app.state.runtime.sessions.kw["bind"], "campaign") as reads:
        other = await api.client.get("/api/campaigns", params={"label": label}, headers=LEGEND_READER)
    assert other.status_code == 200 and other.json() == []  # a snoplus label: no campaign of snoplus read
    assert reads.seen and all("legend" in p and "snoplus" not in p for p in reads.parameters)
    for plan in await reads.plans():
        assert "ix_campaign_experiment_label (experiment=? AND label=?" in plan, plan


async def test_processing_kind_goes_to_data_processing(api: Api) -> None:
    await api.client.post("/api/sites/local/drain", headers=MANAGER)
    label = unique_label()
    body = {"jobs": {**jobs_file(label, runs=2, per_run=1, by_time=0), "kind": "processing"}}
    created = (await _post(api, body)).json()
    assert created["database"] == "data-processing"
    assert len(await api.jobs(label, "data-processing")) == 2 and await api.jobs(label) == []


async def test_a_crash_in_the_middle_is_finished_by_resending(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    await api.client.post("/api/sites/local/drain", headers=MANAGER)
    from prodflow_core.couch.database import CouchDatabase

    real_bulk = CouchDatabase.bulk_docs
    calls = {"n": 0}

    async def dying_bulk(self: CouchDatabase, docs: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("the submitter died here")
        return await real_bulk(self, docs, **kw)

    api.settings.bulk_chunk = 100
    monkeypatch.setattr(CouchDatabase, "bulk_docs", dying_bulk)
    label = unique_label()
    body = {"jobs": jobs_file(label, runs=250, per_run=2, by_time=0)}
    with pytest.raises(ConnectionError):
        await _post(api, body)
    assert 0 < len(await api.jobs(label)) < 500
    monkeypatch.setattr(CouchDatabase, "bulk_docs", real_bulk)
    resent = await _post(api, body)
    assert resent.status_code == 200 and resent.json()["jobs"] == 500 and resent.json()["state"] == "created"
    assert 0 < resent.json()["created"] < 500
    assert len(await api.jobs(label)) == 500
    assert (await api.client.get(resent.headers["location"] + "/exactly", headers=READER)).text.count("\n") == 250
