"""``/api/requests`` over HTTP against the running app (SQLite, CouchDB-API server, SMTP server)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest
from prodflow_core.testing_sql import reads_of
from request_api_support import ADMIN, ALICE, BOB, LEGEND_ONLY, MANAGER, READER, Api, eventually, fields, form, headers

pytestmark = pytest.mark.integration


async def file_request(api: Api, **changes: object) -> dict[str, object]:
    answer = await api.client.post("/api/requests", json=form(**changes), headers=ALICE)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def approved(api: Api, **changes: object) -> str:
    request_id = str((await file_request(api, **changes))["id"])
    assert (await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)).status_code == 200
    answer = await api.client.post(f"/api/requests/{request_id}/approve", json={"note": "go"}, headers=MANAGER)
    assert answer.status_code == 200, answer.text
    return request_id


async def test_file_read_and_list(api: Api) -> None:
    filed = await file_request(api)
    assert filed["id"] == "req-000001" and filed["state"] == "draft" and filed["requester"] == "alice"
    assert filed["allowed"] == ["submitted", "cancelled"]
    assert filed["history"][0]["by"] == "alice"  # type: ignore[index]
    again = await api.client.get("/api/requests/req-000001", headers=READER)
    assert again.json()["modules"] == form()["modules"]
    await file_request(
        api,
        label="second_label",
        experiment="legend",
        rat_v="rm-0.5",
        modules=[{"module": "l200-hpge-bulk-2vbb", "n_ev": 10_000_000}],
    )
    page = (await api.client.get("/api/requests", params={"limit": 1}, headers=READER)).json()
    assert page["total"] == 2 and [r["id"] for r in page["items"]] == ["req-000002"]
    second = (await api.client.get("/api/requests", params={"limit": 1, "offset": 1}, headers=READER)).json()
    assert [r["id"] for r in second["items"]] == ["req-000001"]
    by_label = (await api.client.get("/api/requests", params={"label": "second_label"}, headers=READER)).json()
    assert [r["experiment"] for r in by_label["items"]] == ["legend"]
    by_exp = (
        await api.client.get(
            "/api/requests", params={"experiment": "snoplus", "state": "draft", "requester": "alice"}, headers=READER
        )
    ).json()
    assert [r["id"] for r in by_exp["items"]] == ["req-000001"]
    legend_only = (await api.client.get("/api/requests", headers=LEGEND_ONLY)).json()
    assert [r["id"] for r in legend_only["items"]] == ["req-000002"]
    hidden = await api.client.get("/api/requests/req-000001", headers=LEGEND_ONLY)
    assert hidden.status_code == 403 and hidden.json()["type"].endswith("/forbidden")
    bad_state = await api.client.get("/api/requests", params={"state": "nope"}, headers=READER)
    assert bad_state.status_code == 422 and fields(bad_state.json()) == {"query.state": "enum"}
    missing = await api.client.get("/api/requests/req-000999", headers=READER)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def _file_some(api: Api) -> None:
    """5 snoplus and 3 legend requests, filed in turn (numbers interleave across experiments)."""
    legend = {"experiment": "legend", "rat_v": "rm-0.5", "modules": [{"module": "l200-hpge-bulk-2vbb", "n_ev": 1000}]}
    for n in range(5):
        await file_request(api, label=f"snoplus_{n}")
        if n < 3:
            await file_request(api, label=f"legend_{n}", **legend)


async def test_pages_follow_an_opaque_cursor_good_only_for_its_query_and_caller(api: Api) -> None:
    await _file_some(api)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.client.get("/api/requests", params=params, headers=READER)).json()
        assert page["total"] == 8
        seen += [r["id"] for r in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        assert b"req-" not in raw and b"{" not in raw[:2] and seen[-1] not in cursor
    assert seen == [f"req-{n:06d}" for n in range(8, 0, -1)]  # every request once, newest first
    first = (await api.client.get("/api/requests", params={"limit": 3}, headers=READER)).json()
    tampered = first["next"][:-2] + ("AA" if first["next"][-2:] != "AA" else "BB")
    for params, caller in (
        ({"cursor": first["next"], "state": "draft"}, READER),  # another query
        ({"cursor": first["next"]}, ALICE),  # another identity
        ({"cursor": tampered}, READER),
        ({"cursor": "req-000005"}, READER),
    ):
        refused = await api.client.get("/api/requests", params=params, headers=caller)
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
        assert fields(refused.json()) == {"query.cursor": "invalid"}


async def test_a_listing_reads_only_the_callers_experiments_at_the_index(api: Api) -> None:
    await _file_some(api)
    async with reads_of(api.app.state.sessions.kw["bind"], "production_request") as reads:
        other = (await api.client.get("/api/requests", params={"label": "snoplus_0"}, headers=LEGEND_ONLY)).json()
        drafts = (await api.client.get("/api/requests", params={"state": "draft"}, headers=LEGEND_ONLY)).json()
    assert other["items"] == [] and other["total"] == 0 and other["next"] is None
    assert [r["experiment"] for r in drafts["items"]] == ["legend"] * 3
    assert reads.seen and all("legend" in p and "snoplus" not in p for p in reads.parameters)
    for plan in await reads.plans():  # each entered at the experiment on an (experiment, ...) index
        assert "(experiment=? AND" in plan and "SCAN" not in plan, plan


async def test_roles(api: Api) -> None:
    assert (await api.client.post("/api/requests", json=form(), headers=READER)).status_code == 403
    assert (await api.client.post("/api/requests", json=form())).status_code == 401
    request_id = (await file_request(api))["id"]
    assert (await api.client.post(f"/api/requests/{request_id}/submit", headers=BOB)).status_code == 403
    assert (await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)).status_code == 200
    refused = await api.client.post(f"/api/requests/{request_id}/approve", headers=ALICE)
    assert refused.status_code == 403 and refused.json()["required_role"] == "manager"
    other_experiment = await api.client.post(f"/api/requests/{request_id}/approve", headers=LEGEND_ONLY)
    assert other_experiment.status_code == 403


async def test_patch_only_drafts_only_by_the_requester(api: Api) -> None:
    request_id = (await file_request(api))["id"]
    changed = await api.client.patch(
        f"/api/requests/{request_id}", json={"title": "new title", "priority": 5}, headers=ALICE
    )
    assert changed.status_code == 200 and changed.json()["title"] == "new title"
    assert changed.json()["modules"] == form()["modules"]
    assert (await api.client.patch(f"/api/requests/{request_id}", json={"title": "x"}, headers=BOB)).status_code == 403
    bad = await api.client.patch(
        f"/api/requests/{request_id}", json={"modules": [{"module": "Nope", "n_ev": 1}]}, headers=ALICE
    )
    assert bad.status_code == 422 and fields(bad.json()) == {"modules.0.module": "unknown_module"}
    unknown = await api.client.patch(f"/api/requests/{request_id}", json={"experiment": "legend"}, headers=ALICE)
    assert unknown.status_code == 422 and fields(unknown.json()) == {"experiment": "extra_forbidden"}
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    late = await api.client.patch(f"/api/requests/{request_id}", json={"title": "late"}, headers=ALICE)
    assert late.status_code == 409
    assert late.json()["state"] == "submitted" and late.json()["allowed"] == ["approved", "rejected", "cancelled"]


async def test_state_machine_and_history(api: Api) -> None:
    request_id = (await file_request(api))["id"]
    early = await api.client.post(f"/api/requests/{request_id}/approve", headers=MANAGER)
    assert early.status_code == 409
    assert early.json()["allowed"] == ["submitted", "cancelled"] and early.json()["wanted"] == "approved"
    assert "allowed from draft: submitted, cancelled" in early.json()["detail"]
    await api.client.post(f"/api/requests/{request_id}/submit", json={"note": "please"}, headers=ALICE)
    no_reason = await api.client.post(f"/api/requests/{request_id}/reject", json={}, headers=MANAGER)
    assert no_reason.status_code == 422 and fields(no_reason.json()) == {"note": "missing"}
    rejected = await api.client.post(f"/api/requests/{request_id}/reject", json={"note": "too big"}, headers=MANAGER)
    assert rejected.json()["state"] == "rejected" and rejected.json()["allowed"] == []
    history = [(h["state"], h["by"], h["note"]) for h in rejected.json()["history"]]
    assert history == [("draft", "alice", "filed"), ("submitted", "alice", "please"), ("rejected", "maria", "too big")]
    final = await api.client.post(f"/api/requests/{request_id}/cancel", headers=ALICE)
    assert final.status_code == 409 and final.json()["allowed"] == []
    # a rejected request gives its label back
    assert (await api.client.post("/api/requests", json=form(), headers=BOB)).status_code == 201


async def test_cancel_from_approved_keeps_the_label(api: Api) -> None:
    request_id = await approved(api)
    cancelled = await api.client.post(f"/api/requests/{request_id}/cancel", json={"note": "wrong"}, headers=MANAGER)
    assert cancelled.json()["state"] == "cancelled"
    taken = await api.client.post("/api/requests", json=form(), headers=BOB)
    assert taken.status_code == 422 and fields(taken.json()) == {"label": "label_taken"}


async def test_approval_stores_a_deterministic_jobs_json(api: Api) -> None:
    request_id = await approved(api)
    body = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()
    assert body["state"] == "approved" and body["jobs"] == 2 + 3397
    assert body["jobs_json"] == f"/api/requests/{request_id}/jobs.json"
    download = await api.client.get(body["jobs_json"], headers=READER)
    assert download.status_code == 200 and download.headers["content-type"] == "application/json"
    assert hashlib.sha256(download.content).hexdigest() == body["jobs_json_sha256"]
    assert download.headers["etag"] == f'"{body["jobs_json_sha256"]}"'
    jobs = json.loads(download.content)
    assert jobs["format"] == "prodflow.jobs/1" and jobs["request_id"] == request_id
    assert jobs["label"] == "2026-11_WaterBi214_v1" and jobs["contacts"] == ["alice@snolab.example.org"]
    # the same request, previewed, gives the same modules; approved again elsewhere, the same bytes
    preview = (
        await api.client.post("/api/requests/preview", json=form(label="2026-11_WaterBi214_v2"), headers=ALICE)
    ).json()
    assert preview["jobs_json"]["modules"] == jobs["modules"] and preview["jobs"] == body["jobs"]
    not_yet = await api.client.get("/api/requests/req-000001/jobs.json".replace("1", "9"), headers=READER)
    assert not_yet.status_code == 404


async def test_same_request_same_bytes(api: Api, tmp_path: object) -> None:
    first = await approved(api)
    await api.client.post(f"/api/requests/{first}/cancel", json={"note": "again"}, headers=MANAGER)
    content = (await api.client.get(f"/api/requests/{first}/jobs.json", headers=READER)).content
    second = await approved(api, label="2026-11_WaterBi214_v2")
    other = (await api.client.get(f"/api/requests/{second}/jobs.json", headers=READER)).content
    assert other == content.replace(b"req-000001", b"req-000002").replace(b"_v1", b"_v2")


async def test_preview_stores_nothing(api: Api) -> None:
    answer = await api.client.post("/api/requests/preview", json=form(), headers=ALICE)
    assert answer.status_code == 200
    preview = answer.json()
    assert preview["jobs"] == 2 + 3397 and preview["jobs_json"]["request_id"] is None
    assert preview["modules"][0] == {
        "module": "WaterBi214Run",
        "mode": "run_by_run",
        "jobs": 2,
        "runs": 2,
        "conditions": {"water_2017": 2},
    }
    assert (await api.client.get("/api/requests", headers=READER)).json()["total"] == 0
    invalid = await api.client.post("/api/requests/preview", json=form(contacts=["nope"]), headers=ALICE)
    assert invalid.status_code == 422 and fields(invalid.json()) == {"contacts.0": "value_error"}


async def test_events_of_the_lifecycle(api: Api) -> None:
    request_id = await approved(api)
    rejected_id = (await file_request(api, label="another_label"))["id"]
    await api.client.post(f"/api/requests/{rejected_id}/submit", headers=ALICE)
    await api.client.post(f"/api/requests/{rejected_id}/reject", json={"note": "no"}, headers=MANAGER)

    async def all_published() -> bool:
        return len(await api.events()) == 4

    await eventually(all_published, what="4 events")
    types = [e["type"].removeprefix("org.prodflow.") for e in await api.events()]
    assert sorted(types) == ["request.approved", "request.rejected", "request.submitted", "request.submitted"]
    approval = (await api.events("request.approved"))[0]
    sha = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["jobs_json_sha256"]
    assert approval["subject"] == request_id and approval["experiment"] == "snoplus"
    assert approval["source"] == "/services/request-api"
    assert approval["data"] == {
        "request_id": request_id,
        "label": "2026-11_WaterBi214_v1",
        "kind": "production",
        "site": "sfu-slurm",
        "database": "data-production",
        "jobs_json": f"/api/requests/{request_id}/jobs.json",
        "jobs_json_sha256": sha,
    }


async def test_admin_is_not_enough_elsewhere(api: Api) -> None:
    # admin ranks above manager: it may approve too
    request_id = (await file_request(api))["id"]
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    assert (await api.client.post(f"/api/requests/{request_id}/approve", headers=ADMIN)).status_code == 200


async def test_two_managers_approving_at_once(api: Api) -> None:
    request_id = (await file_request(api))["id"]
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    other_manager = headers("mark", "manager")
    answers = await asyncio.gather(
        *(api.client.post(f"/api/requests/{request_id}/approve", headers=h) for h in (MANAGER, other_manager))
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    body = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()
    assert [h["state"] for h in body["history"]].count("approved") == 1
    assert len(body["notifications"]) == 1


async def test_approval_checks_the_catalog_again(api: Api) -> None:
    request_id = (await file_request(api))["id"]
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    assert (await api.client.delete("/api/catalog/snoplus/runs/100152", headers=ADMIN)).status_code == 204
    refused = await api.client.post(f"/api/requests/{request_id}/approve", headers=MANAGER)
    assert refused.status_code == 422 and fields(refused.json()) == {"modules.0.run_numbers": "unknown_runs"}
    body = (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()
    assert body["state"] == "submitted" and body["jobs_json"] is None and body["notifications"] == []


async def test_patch_to_null_names_the_field(api: Api) -> None:
    request_id = (await file_request(api))["id"]
    cleared = await api.client.patch(f"/api/requests/{request_id}", json={"site": None}, headers=ALICE)
    assert cleared.status_code == 200 and cleared.json()["site"] is None
    refused = await api.client.patch(f"/api/requests/{request_id}", json={"title": None, "label": None}, headers=ALICE)
    assert refused.status_code == 422 and fields(refused.json()) == {"title": "string_type", "label": "string_type"}


async def test_processing_request_goes_to_the_processing_database(api: Api) -> None:
    body = form(
        experiment="legend",
        kind="processing",
        rat_v="dataprod-1.2",
        label="l200-p03-dsp_v1",
        modules=[{"module": "l200-tier-dsp", "run_ranges": [{"first": 1, "last": 12}]}],
    )
    request_id = (await api.client.post("/api/requests", json=body, headers=ALICE)).json()["id"]
    await api.client.post(f"/api/requests/{request_id}/submit", headers=ALICE)
    approved_now = await api.client.post(f"/api/requests/{request_id}/approve", headers=MANAGER)
    assert approved_now.json()["jobs"] == 12
    jobs = (await api.client.get(f"/api/requests/{request_id}/jobs.json", headers=READER)).json()
    assert jobs["kind"] == "processing" and jobs["modules"][0]["run_numbers"] == list(range(1, 13))

    async def announced() -> bool:
        return len(await api.events("request.approved")) == 1

    await eventually(announced, what="request.approved")
    assert (await api.events("request.approved"))[0]["data"]["database"] == "data-processing"
