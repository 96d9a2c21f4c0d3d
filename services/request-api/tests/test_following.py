"""Requests move on from the submitter's and monitor's events on the shared stream."""

from __future__ import annotations

import pytest
from request_api_support import READER, Api, approve, campaign, eventually, publish, state_becomes

pytestmark = pytest.mark.integration


async def test_campaign_then_completed(api: Api) -> None:
    request_id = await approve(api)
    event_id = await publish(api, "/services/submitter", "campaign.created", campaign(request_id))
    moved = await state_becomes(api, request_id, "submitted-to-production")
    assert moved["campaign_id"] == "camp-000007"
    assert moved["history"][-1]["by"] == "/services/submitter" and "3399 jobs" in moved["history"][-1]["note"]
    # the same event again (at-least-once delivery) changes nothing
    await publish(api, "/services/submitter", "campaign.created", campaign(request_id), event_id=event_id + "X")
    counts = {"completed": 3397, "cancelled": 2}
    await publish(
        api,
        "/services/monitor",
        "label.completed",
        {"label": "2026-11_WaterBi214_v1", "database": "data-production", "counts": counts},
    )
    done = await state_becomes(api, request_id, "completed")
    assert [h["state"] for h in done["history"]] == [
        "draft",
        "submitted",
        "approved",
        "submitted-to-production",
        "completed",
    ]

    async def announced() -> bool:
        return len(await api.events("request.completed")) == 1

    await eventually(announced, what="request.completed")
    event = (await api.events("request.completed"))[0]
    assert event["data"] == {"request_id": request_id, "label": "2026-11_WaterBi214_v1", "counts": counts}


async def test_failed_jobs_fail_the_request(api: Api) -> None:
    request_id = await approve(api)
    # a campaign uploaded directly carries no request id: the label finds the request
    await publish(api, "/services/submitter", "campaign.created", campaign(None))
    await state_becomes(api, request_id, "submitted-to-production")
    await publish(
        api,
        "/services/monitor",
        "label.completed",
        {"label": "2026-11_WaterBi214_v1", "database": "data-production", "counts": {"completed": 3000, "failed": 399}},
    )
    failed = await state_becomes(api, request_id, "failed")
    assert "failed 399" in failed["history"][-1]["note"]


async def test_label_completed_before_the_campaign_event(api: Api) -> None:
    request_id = await approve(api)
    await publish(
        api,
        "/services/monitor",
        "label.completed",
        {"label": "2026-11_WaterBi214_v1", "database": "data-production", "counts": {"completed": 1}},
    )
    done = await state_becomes(api, request_id, "completed")
    assert [h["state"] for h in done["history"]][-2:] == ["submitted-to-production", "completed"]
    # a late campaign event changes nothing any more
    await publish(api, "/services/submitter", "campaign.created", campaign(request_id))
    other = await approve(api, label="second_label")
    await publish(api, "/services/submitter", "campaign.created", campaign(other, "second_label"))
    await state_becomes(api, other, "submitted-to-production")
    assert (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["state"] == "completed"


async def test_events_of_other_labels_are_ignored(api: Api) -> None:
    request_id = await approve(api)
    await publish(api, "/services/submitter", "campaign.created", campaign(None, label="someone_elses_label"))
    other = await approve(api, label="second_label")
    await publish(api, "/services/submitter", "campaign.created", campaign(other, "second_label"))
    await state_becomes(api, other, "submitted-to-production")
    assert (await api.client.get(f"/api/requests/{request_id}", headers=READER)).json()["state"] == "approved"
