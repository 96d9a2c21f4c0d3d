"""``request.approved`` → a campaign, with jobs.json fetched from (a FAKE) request-api."""

from __future__ import annotations

import hashlib
import json

import pytest
from prodflow_core.events import make_event
from submitter_support import MANAGER, READER, Api, eventually, jobs_file, unique_label

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def _approve(api: Api, request_id: str, label: str, content: bytes, site: str = "local") -> None:
    event = make_event(
        "request.approved", "/services/request-api", subject=request_id, experiment="snoplus",
        data={"request_id": request_id, "label": label, "kind": "production", "site": site,
              "database": "data-production", "jobs_json": f"/api/requests/{request_id}/jobs.json",
              "jobs_json_sha256": hashlib.sha256(content).hexdigest()},
    )  # fmt: skip
    await api.app.state.events.publish(event)


async def test_approved_request_becomes_one_campaign(
    api: Api, request_api: tuple[str, dict[str, bytes], list[str]]
) -> None:
    await api.client.post("/api/sites/local/drain", headers=MANAGER)
    _url, files, calls = request_api
    label = unique_label()
    request_id = f"req-{label[-6:]}"
    document = {**jobs_file(runs=3, per_run=1, by_time=2), "label": label, "request_id": request_id,
                "format": "prodflow.jobs/1", "kind": "production", "contacts": ["a@example.org"]}  # fmt: skip
    content = json.dumps(document, sort_keys=True).encode() + b"\n"
    files[request_id] = content
    await _approve(api, request_id, label, content, site="sfu-slurm")  # not configured here: the default site
    await _approve(api, request_id, label, content, site="sfu-slurm")  # delivered twice: still one campaign

    async def made() -> bool:
        listed = await api.client.get("/api/campaigns", params={"request_id": request_id}, headers=READER)
        return len(listed.json()) == 1 and listed.json()[0]["state"] == "created"

    await eventually(made, what="the campaign of the approved request")
    campaign = (await api.client.get("/api/campaigns", params={"request_id": request_id}, headers=READER)).json()[0]
    assert campaign["jobs"] == 5 and campaign["label"] == label and campaign["created_by"] == "service:submitter"
    assert campaign["site"] == "local"
    assert f"/api/requests/{request_id}/jobs.json" in calls
    docs = await api.jobs(label)
    assert len(docs) == 5 and {d["request_id"] for d in docs} == {request_id}
    created = [e for e in await api.events("campaign.created") if e["data"]["request_id"] == request_id]
    assert len(created) == 1 and created[0]["data"]["label"] == label


async def test_a_tampered_or_missing_file_is_passed_over(
    api: Api, request_api: tuple[str, dict[str, bytes], list[str]]
) -> None:
    _url, files, _calls = request_api
    label = unique_label()
    files["req-tampered"] = json.dumps(jobs_file(label)).encode()
    await _approve(api, "req-tampered", label, b"something else")
    await _approve(api, "req-absent", label, b"{}")
    good = unique_label()
    files["req-good"] = json.dumps(jobs_file(good, runs=1, per_run=1, by_time=0)).encode()
    await _approve(api, "req-good", good, files["req-good"])

    async def good_made() -> bool:
        return len(await api.jobs(good)) == 1

    await eventually(good_made, what="the later, good request submitted")  # the bad ones did not block the stream
    assert await api.jobs(label) == []
