"""The shared event stream against a real CouchDB-API server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from prodflow_core.couch import CouchDatabase
from prodflow_core.events import CloudEvent, EventPublisher, event_follower, make_event, new_event_id

MakeDb = Callable[[str], Awaitable[CouchDatabase]]


def test_event_ids_sort_by_time() -> None:
    early, late = new_event_id(now_ms=1_000), new_event_id(now_ms=2_000)
    assert early.startswith("evt-") and len(early) == 30 and early < late


def test_document_form_follows_formats_md() -> None:
    event = make_event(
        "job.completed",
        "/services/monitor",
        subject="job:L:M:1:0:p1",
        experiment="snoplus",
        data={"label": "L", "status": "completed"},
    )
    doc = event.document()
    assert doc["_id"] == doc["id"] == event.id
    assert doc["type"] == "org.prodflow.job.completed" and doc["specversion"] == "1.0"
    assert doc["time"].endswith("Z") and doc["datacontenttype"] == "application/json"
    assert event.short_type == "job.completed"


@pytest.mark.integration
async def test_publish_twice_is_harmless_and_follower_filters_types(fresh_db: MakeDb) -> None:
    db = await fresh_db("events")
    publisher = EventPublisher(db, "/services/test")
    first = await publisher.emit("request.approved", subject="req-1", experiment="snoplus", data={"label": "L"})
    await publisher.publish(first)  # same id again: no second document
    await publisher.publish_many([make_event("job.running", "/services/test", subject=f"j{i}") for i in range(3)])
    await publisher.publish_many([first])
    assert (await db.info())["doc_count"] == 4

    seen: list[CloudEvent] = []

    async def handle(event: CloudEvent, _seq: str) -> None:
        seen.append(event)

    follower = event_follower(db, "tests", handle, types=["request.approved"])
    while await follower.poll_once(wait=False):
        pass
    assert [e.id for e in seen] == [first.id] and seen[0].data == {"label": "L"}
    again = event_follower(db, "tests", handle, types=["request.approved"])
    assert await again.poll_once(wait=False) == 0  # resumed from the stored checkpoint
