"""The shared event stream against a real CouchDB-API server."""

from __future__ import annotations

import asyncio

import pytest
from prodflow_core.couch import CouchClient
from prodflow_core.couch.server import free_port
from prodflow_core.events import (
    BackloggedPublisher,
    CloudEvent,
    EventPublisher,
    event_follower,
    make_event,
    new_event_id,
)
from prodflow_core.testing import MakeDb


def test_event_ids_sort_by_time() -> None:
    early, late = new_event_id(now_ms=1_000), new_event_id(now_ms=2_000)
    assert early.startswith("evt-") and len(early) == 30 and early < late


def test_event_ids_of_one_process_increase_within_a_millisecond() -> None:
    # CouchDB 3 stores one _bulk_docs in id order: ids made in one millisecond must still sort as they were made.
    ids = [new_event_id() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


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
@pytest.mark.both_couch
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


@pytest.mark.integration
@pytest.mark.both_couch
async def test_a_follower_of_some_types_reads_and_checkpoints_only_for_them(fresh_db: MakeDb) -> None:
    db = await fresh_db("events", shards=1)
    publisher = EventPublisher(db, "/services/test")
    seen: list[str] = []

    async def handle(event: CloudEvent, _seq: str) -> None:
        seen.append(event.short_type)

    follower = event_follower(db, "tests", handle, types=["request.approved"])
    follower.quiet_checkpoint_s = 3600.0
    await follower.poll_once(wait=False)  # a new consumer: its start is stored
    start = await db.get_local(follower.checkpoint_id)
    assert start is not None

    await publisher.publish_many([make_event("job.running", "/services/test", subject=f"j{i}") for i in range(3)])
    read = await follower.poll_once(wait=False)
    # CouchDB filters on the server (the follower reads nothing); PouchDB Server sends all, picked here.
    assert read == (0 if await db.client.filters_changes() else 3) and seen == []
    assert await db.get_local(follower.checkpoint_id) == start  # nothing handled: no checkpoint written

    await publisher.emit("request.approved", subject="req-1")
    await publisher.emit("job.completed", subject="j0")
    while await follower.poll_once(wait=False):
        pass
    assert seen == ["request.approved"]
    stored = await db.get_local(follower.checkpoint_id)
    assert stored is not None and stored["seq"] != start["seq"]
    again: list[str] = []
    resumed = event_follower(db, "tests", lambda event, _seq: _append(again, event), types=["request.approved"])
    await resumed.poll_once(wait=False)
    assert again == []  # resumed after the handled event


async def _append(seen: list[str], event: CloudEvent) -> None:
    seen.append(event.short_type)


@pytest.mark.integration
@pytest.mark.both_couch
async def test_a_local_document_written_with_a_stale_revision_takes_the_new_body(fresh_db: MakeDb) -> None:
    db = await fresh_db("locals")
    first = await db.put_local("cursor", {"seq": "1"})
    second = await db.put_local("cursor", {"seq": "2"}, rev=first)
    # Stale: PouchDB Server answers a conflict (then the current revision is read); CouchDB 3 takes it as is.
    third = await db.put_local("cursor", {"seq": "3"}, rev=first)
    stored = await db.get_local("cursor")
    assert stored is not None and stored["seq"] == "3" and stored["_rev"] == third and second != first


@pytest.mark.integration
@pytest.mark.both_couch
async def test_backlog_keeps_events_while_the_server_is_away(fresh_db: MakeDb) -> None:
    db = await fresh_db("events", shards=1)  # as the services create the stream: one order of _changes
    async with CouchClient(f"http://127.0.0.1:{free_port()}") as nowhere:
        publisher = EventPublisher(nowhere.db(db.name), "/services/test")  # connections refused: server away
        backlogged = BackloggedPublisher(publisher, retry_s=0.05)
        waiting = [await backlogged.emit("cycle.run.progress", subject=f"run-{i}") for i in range(3)]
        assert [e.id for e in backlogged.backlog] == [e.id for e in waiting]
        assert not await backlogged.flush()

    publisher.db = db  # the server is back
    stop = asyncio.Event()
    runner = asyncio.create_task(backlogged.run(stop))
    later = await backlogged.emit("cycle.run.finished", subject="run-3")  # queued behind the backlog
    # Events made in the same millisecond, stored with one _bulk_docs: CouchDB 3 writes them in id order.
    for _ in range(100):
        if not backlogged.backlog:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await runner
    stored = (await db.changes(since="0")).results  # in the order the server took them
    assert [r["id"] for r in stored] == [e.id for e in [*waiting, later]]
    assert (await db.get(later.id))["subject"] == "run-3"
