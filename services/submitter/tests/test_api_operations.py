"""Cancel and resubmit over the API, drain and undrain, and reconciling after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prodflow_core import jobdocs
from prodflow_core.backends import BackendJob, BackendStatus, LocalBackend
from prodflow_submitter.queue import SubmissionLoop
from submitter_support import (
    ADMIN,
    MANAGER,
    READER,
    Api,
    counted,
    eventually,
    jobs_file,
    make_settings,
    put_site,
    running,
    unique_label,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


async def _campaign(api: Api, label: str, site: str, **jobs: Any) -> dict[str, Any]:
    body = {"jobs": jobs_file(label, **jobs), "site": site}
    response = await api.client.post("/api/campaigns", json=body, headers=MANAGER)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _fail(api: Api, doc_ids: list[str], status: str = "failed") -> None:
    """What the monitor does when a job fails: submitted → running → failed, with ``_rev``."""
    db = api.db()
    docs = await db.get_many(doc_ids)
    for doc in docs.values():
        for step in ("running", status):
            doc.update(jobdocs.transition(doc, step, "2026-11-25T10:00:00Z", "test stands in for the monitor"))
    await db.bulk_docs(list(docs.values()))


async def test_cancel_a_campaign_stops_its_running_jobs(api: Api) -> None:
    site = await put_site(api, "slow", max_running=3, command_template="sleep 30")
    label = unique_label()
    response = await api.client.post("/api/campaigns", json={"jobs": jobs_file(label, runs=3, per_run=2, by_time=0),
                                     "site": "slow", "command_template": "sleep 30"}, headers=ADMIN)  # fmt: skip
    campaign = response.json()

    async def three_submitted() -> bool:
        return sum(d["status"] == "submitted" and bool(d["backend"]["id"]) for d in await api.jobs(label)) == 3

    await eventually(three_submitted, what="3 jobs at the backend (max_running)")
    await asyncio.sleep(0.5)
    assert sum(d["status"] == "submitted" for d in await api.jobs(label)) == 3  # the site's limit holds
    running_ids = [d["backend"]["id"] for d in await api.jobs(label) if d["backend"]]
    cancelled = await api.client.post(f"/api/campaigns/{campaign['id']}/cancel", json={"reason": "wrong macro"},
                                      headers=MANAGER)  # fmt: skip
    assert cancelled.status_code == 200 and len(cancelled.json()["job_ids"]) == 6
    docs = await api.jobs(label)
    assert {d["status"] for d in docs} == {"cancelled"} and docs[0]["history"][-1]["reason"] == "wrong macro"
    backend = LocalBackend.from_options(site["options"])

    async def stopped() -> bool:
        return {s.state for s in (await backend.status(running_ids)).values()} == {BackendStatus.CANCELLED}

    await eventually(stopped, what="the local jobs stopped")
    event = (await api.events("jobs.cancelled"))[0]
    assert sorted(event["data"]["job_ids"]) == sorted(d["_id"] for d in docs) and event["data"]["label"] == label
    assert event["data"]["whole"] is True
    again = await api.client.post(f"/api/campaigns/{campaign['id']}/cancel", json={}, headers=MANAGER)
    assert again.json()["job_ids"] == []


async def test_cancel_selected_jobs_of_a_label(api: Api) -> None:
    await put_site(api, "idle", max_running=5)
    await api.client.post("/api/sites/idle/drain", headers=MANAGER)
    label = unique_label()
    await _campaign(api, label, "idle", runs=4, per_run=1, by_time=0)
    ids = [d["_id"] for d in await api.jobs(label)]
    body = {"database": "data-production", "job_ids": [ids[0], ids[1], "job:other:X:1:0:p1"]}
    result = (await api.client.post(f"/api/campaigns/by-label/{label}/cancel", json=body, headers=MANAGER)).json()
    assert result["job_ids"] == ids[:2] and result["skipped"] == ["job:other:X:1:0:p1"]
    statuses = {d["_id"]: d["status"] for d in await api.jobs(label)}
    assert statuses == {ids[0]: "cancelled", ids[1]: "cancelled", ids[2]: "waiting", ids[3]: "waiting"}
    assert (await api.events("jobs.cancelled"))[0]["data"]["whole"] is False  # picked by hand
    await api.client.post("/api/sites/idle/drain", headers=MANAGER)  # already drained: not announced again
    (drained,) = await api.events("site.drained")
    assert drained["subject"] == "idle" and drained["data"] == {
        "site": "idle",
        "by": "maria",
        "reason": "drained by maria",
    }
    missing = await api.client.post("/api/campaigns/by-label/no_such_label/cancel",
                                    json={"database": "data-production"}, headers=MANAGER)  # fmt: skip
    assert missing.status_code == 404


async def test_resubmit_failures_as_next_pass_and_as_next_attempt(api: Api) -> None:
    await put_site(api, "retry", max_running=100)
    label = unique_label()
    first = await _campaign(api, label, "retry", runs=4, per_run=1, by_time=0)

    async def all_submitted() -> bool:
        return all(d["status"] == "submitted" and d["backend"]["id"] for d in await api.jobs(label))

    await eventually(all_submitted, what="jobs at the backend")
    ids = sorted(d["_id"] for d in await api.jobs(label))
    await _fail(api, ids[:2])
    await _fail(api, ids[2:3], "partFail")
    await api.client.post("/api/sites/retry/drain", headers=MANAGER)

    body = {"database": "data-production", "mode": "next_pass"}
    result = (await api.client.post(f"/api/campaigns/by-label/{label}/resubmit", json=body, headers=MANAGER)).json()
    assert result["pass"] == 2 and len(result["job_ids"]) == 3 and result["campaign"] != first["id"]
    new_docs = {d["_id"]: d for d in await api.jobs(label) if d["pass"] == 2}
    assert sorted(d["parent"] for d in new_docs.values()) == ids[:3]
    one = new_docs[ids[0].replace(":p1", ":p2")]
    assert one["status"] == "waiting" and one["attempt"] == 1 and one["campaign_id"] == result["campaign"]
    assert one["seed"] != (await api.db().get(ids[0]))["seed"]
    exactly = (await api.client.get(f"/api/campaigns/{result['campaign']}/exactly", headers=READER)).text
    assert exactly.splitlines() == [f"WaterBi214Run {100000 + i} 2" for i in range(3)]
    campaign = await counted(api, f"/api/campaigns/{result['campaign']}", {"waiting": 3})
    assert campaign["kind"] == "resubmission" and campaign["parent_campaign"] == first["id"]
    event = (await api.events("jobs.resubmitted"))[-1]
    assert event["data"]["mode"] == "next_pass" and sorted(event["data"]["parents"]) == ids[:3]
    again = (await api.client.post(f"/api/campaigns/by-label/{label}/resubmit", json=body, headers=MANAGER)).json()
    assert again["campaign"] == result["campaign"] and again["pass"] == 2  # the same failures: the same pass
    assert len(await api.jobs(label)) == 7 and len(await api.events("jobs.resubmitted")) == 1

    # The old failures stay as they were (the lineage goes through parent); a retry in place is the other mode.
    attempt = {"database": "data-production", "mode": "next_attempt", "job_ids": [ids[0], ids[3]]}
    retried = (await api.client.post(f"/api/campaigns/by-label/{label}/resubmit", json=attempt,
                                     headers=MANAGER)).json()  # fmt: skip
    assert retried["job_ids"] == [ids[0]] and retried["skipped"] == [ids[3]]
    doc = await api.db().get(ids[0])
    assert doc["status"] == "waiting" and doc["attempt"] == 2 and doc["backend"] is None

    await api.client.post("/api/sites/retry/undrain", headers=MANAGER)

    async def retry_submitted() -> bool:
        doc = await api.db().get(ids[0])
        return doc["status"] == "submitted" and bool(doc["backend"]["id"])

    await eventually(retry_submitted, what="the retried job submitted again")
    doc = await api.db().get(ids[0])
    assert doc["backend"]["id"].endswith(":a2")  # a new backend job for the new attempt


async def test_drain_submits_nothing_new_and_undrain_resumes(api: Api) -> None:
    await put_site(api, "drainable", max_running=100)
    drained = await api.client.post("/api/sites/drainable/drain", headers=MANAGER)
    assert drained.status_code == 200 and drained.json()["drained"] is True
    label = unique_label()
    await _campaign(api, label, "drainable", runs=3, per_run=1, by_time=0)
    await asyncio.sleep(1.0)
    assert {d["status"] for d in await api.jobs(label)} == {"waiting"}
    await api.client.post("/api/sites/drainable/undrain", headers=MANAGER)

    async def all_submitted() -> bool:
        return {d["status"] for d in await api.jobs(label)} == {"submitted"}

    await eventually(all_submitted, what="jobs submitted after undrain")
    site = await counted(api, "/api/sites/drainable", {"submitted": 3})
    assert site["drained"] is False
    assert (await api.client.post("/api/sites/drainable/drain", headers=READER)).status_code == 403


@pytest.mark.parametrize("claimed_with_ids", [False, True], ids=["ids-after-submit", "ids-with-the-claim"])
async def test_restart_reconciles_jobs_caught_between_claim_and_record(
    tmp_path: Path, couch_url: str, request_api: tuple[str, dict[str, bytes], list[str]], claimed_with_ids: bool
) -> None:
    """Any backend's claim (``backend.id`` recorded after the submission), or the claim of a backend whose ids are
    the jobs' names (``local``: the id is in the claim, still ``SUBMITTING``, and nothing is written after)."""
    settings = make_settings(tmp_path, couch_url, request_api[0])
    label = unique_label()
    async with running(settings, drop=False) as api:
        site = await put_site(api, "crashy", max_running=100)
        await api.client.post("/api/sites/crashy/drain", headers=MANAGER)
        await _campaign(api, label, "crashy", runs=4, per_run=1, by_time=0)
        docs = sorted(await api.jobs(label), key=lambda d: d["_id"])
        # A crash after step 1 (claimed) for all four, after step 2 (at the backend) for two of them.
        for doc in docs:
            backend_id = jobdocs.backend_job_name(doc) if claimed_with_ids else None
            claim = {"name": "local", "id": backend_id, "state": "SUBMITTING", "checked_at": "t"}
            doc.update(jobdocs.transition(doc, "submitted", "t", "to site crashy"), backend=claim)
        await api.db().bulk_docs(docs)
        backend = LocalBackend.from_options(site["options"])
        sent = [BackendJob(name=jobdocs.backend_job_name(d), command="true", output_dir=tmp_path / d["_id"])
                for d in docs[:2]]  # fmt: skip
        await backend.submit(sent)
    async with running(settings) as api:
        loop: SubmissionLoop = api.loop
        await asyncio.wait_for(loop.ready.wait(), 10)
        after = sorted(await api.jobs(label), key=lambda d: d["_id"])
        assert [d["status"] for d in after] == ["submitted", "submitted", "waiting", "waiting"]
        assert [d["backend"]["id"] if d["backend"] else None for d in after] == [j.name for j in sent] + [None, None]
        assert after[2]["history"][-1]["reason"].startswith("the backend never received it")
        if claimed_with_ids:  # found at the backend under the id the claim has: nothing to write
            assert [d["_rev"] for d in after[:2]] == [d["_rev"] for d in docs[:2]]


async def test_site_queue_order_runlevel_sends_low_runs_first(api: Api) -> None:
    await put_site(api, "ordered", max_running=2, queue_order=["runlevel"], command_template="sleep 30")
    await api.client.post("/api/sites/ordered/drain", headers=MANAGER)
    label = unique_label()
    runs = [300005, 300001, 300004, 300002, 300003]
    jobs = {"rat_v": "7", "experiment": "snoplus", "label": label,
            "modules": [{"module": "WaterBi214Run", "run_numbers": runs}]}  # fmt: skip
    created = await api.client.post("/api/campaigns", json={"jobs": jobs, "site": "ordered"}, headers=MANAGER)
    assert created.status_code == 201, created.text
    await api.client.post("/api/sites/ordered/undrain", headers=MANAGER)

    async def two_submitted() -> bool:
        return sum(d["status"] == "submitted" for d in await api.jobs(label)) == 2

    await eventually(two_submitted, what="two jobs at the site (its max_running)")
    docs = await api.jobs(label)
    assert sorted(d["run"] for d in docs if d["status"] == "submitted") == [300001, 300002]
    await api.client.post(f"/api/campaigns/{created.json()['id']}/cancel", json={}, headers=MANAGER)
