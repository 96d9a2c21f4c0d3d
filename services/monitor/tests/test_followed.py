"""Job documents as last followed: never older than the feed, bounded, owned only, and the loop's writes on them
(a real CouchDB-API server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prodflow_core.couch import CouchClient, CouchDatabase
from prodflow_core.counts import JobCounter
from prodflow_core.events import EventPublisher
from prodflow_core.sql import make_engine
from prodflow_core.testing import MakeDb
from prodflow_monitor.active import backend_id_of
from prodflow_monitor.followed import FollowedDocs
from prodflow_monitor.loop import MonitorLoop
from prodflow_monitor.report import CycleReport
from prodflow_monitor.settings import MonitorSettings
from prodflow_monitor.sites import SiteDirectory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def db(fresh_db: MakeDb, kit: Any) -> CouchDatabase:
    """Four job documents of label L, as written (revision 1)."""
    made = await fresh_db("followed")
    await made.bulk_docs([kit.job_doc("L", "M", run, "site-a") for run in range(4)])
    return made


def _owns_all(doc_id: str) -> bool:
    return True


async def _revision(db: CouchDatabase, doc_id: str, **change: Any) -> dict[str, Any]:
    """Write a new revision of ``doc_id`` with ``change``; the document as stored."""
    doc = {**(await db.get(doc_id)), **change}
    await db.bulk_docs([doc])
    return doc


async def test_a_held_revision_is_replaced_only_by_a_newer_one_and_reads_are_copies(db: CouchDatabase) -> None:
    followed = FollowedDocs(db, capacity=10, owns=_owns_all)
    first = await db.get("job:L:M:0:0:p1")
    second = await _revision(db, first["_id"], status="running")
    followed.note(second)
    followed.note(first)  # the feed delivering an older revision late
    held = followed.held([first["_id"]])[first["_id"]]
    assert held["_rev"] == second["_rev"] and held["status"] == "running"
    held["status"] = "changed by the caller"
    assert followed.held([first["_id"]])[first["_id"]]["status"] == "running"


async def test_missing_documents_are_read_once_then_held(db: CouchDatabase) -> None:
    followed = FollowedDocs(db, capacity=10, owns=_owns_all)
    ids = [f"job:L:M:{run}:0:p1" for run in range(4)]
    followed.note(await db.get(ids[0]))
    docs = await followed.get_many([*ids, "job:L:M:99:0:p1"])  # one id that does not exist
    assert sorted(docs) == ids and len(followed) == 4
    await _revision(db, ids[1], status="running")  # not followed: what is held stays as read
    assert followed.held(ids)[ids[1]]["status"] == "waiting"
    assert (await followed.read([ids[1]]))[ids[1]]["status"] == "running"
    assert followed.held([ids[1]])[ids[1]]["status"] == "running"


async def test_a_read_that_does_not_keep_leaves_what_is_held_as_it_was(db: CouchDatabase) -> None:
    followed = FollowedDocs(db, capacity=10, owns=_owns_all)
    ids = [f"job:L:M:{run}:0:p1" for run in range(4)]
    followed.note(await db.get(ids[0]))
    docs = await followed.get_many(ids, keep=False)  # the grabber's read over a whole label
    assert sorted(docs) == ids and len(followed) == 1


async def test_a_listing_reads_each_revision_decoded_once_without_its_history(db: CouchDatabase) -> None:
    followed = FollowedDocs(db, capacity=10, owns=_owns_all)
    ids = [f"job:L:M:{run}:0:p1" for run in range(2)]
    followed.note(await _revision(db, ids[0], history=[{"status": "waiting"}]))
    first = await followed.listing.get_many(ids)  # ids[1] is read from CouchDB, then held
    assert sorted(first) == ids and len(followed) == 2
    assert all("history" not in doc and "_rev" not in doc for doc in first.values())
    second = await followed.listing.get_many(ids)
    again = await followed.listing.get_many(ids)
    assert all(again[doc_id] is second[doc_id] for doc_id in ids)  # the same revision: not decoded again
    followed.note(await _revision(db, ids[0], status="running"))
    moved = await followed.listing.get_many(ids)
    assert moved[ids[0]]["status"] == "running" and moved[ids[1]] is second[ids[1]]
    assert followed.held([ids[0]])[ids[0]]["history"] == [{"status": "waiting"}]  # the whole document is held
    followed.drop(ids[1])
    assert followed.shown(ids).keys() == {ids[0]}


async def test_only_owned_documents_are_held_and_the_least_recently_used_go_first(db: CouchDatabase) -> None:
    owned = FollowedDocs(db, capacity=2, owns=lambda doc_id: not doc_id.startswith("job:L:M:3:"))
    ids = [f"job:L:M:{run}:0:p1" for run in range(4)]
    docs = await owned.get_many(ids)
    assert len(docs) == 4  # the caller gets every document, held or not
    assert sorted(owned.held(ids)) == ids[1:3]  # run 3 is not owned; run 0, read first, was evicted
    owned.held([ids[1]])  # used: run 2 is now the least recently used
    owned.note(docs[ids[0]])
    assert sorted(owned.held(ids)) == [ids[0], ids[1]]


async def test_a_read_does_not_bring_back_a_revision_dropped_while_it_was_in_flight(db: CouchDatabase) -> None:
    followed = FollowedDocs(db, capacity=10, owns=_owns_all)
    doc_id = "job:L:M:0:0:p1"
    stored = await db.get(doc_id)
    read = asyncio.create_task(followed.read([doc_id]))
    await asyncio.sleep(0)  # the read is sent
    followed.note({**stored, "_rev": "2-newer", "status": "running"})  # the feed: a newer revision...
    followed.drop(doc_id)  # ...then it is dropped (a write of it conflicted, or it was evicted)
    assert (await read)[doc_id]["_rev"] == stored["_rev"]
    assert followed.held([doc_id]) == {}, "the read's older revision was kept"
    await followed.read([doc_id])  # a read that began after the drop keeps what it found
    assert followed.held([doc_id])[doc_id]["_rev"] == stored["_rev"]


async def test_capacity_zero_holds_nothing(db: CouchDatabase) -> None:
    followed = FollowedDocs(db, capacity=0, owns=_owns_all)
    assert len(await followed.get_many(["job:L:M:0:0:p1"])) == 1
    assert len(followed) == 0


async def test_the_loop_decides_again_on_a_fresh_read_what_an_older_held_revision_left_alone(
    couch: CouchClient, monitor_settings: MonitorSettings, kit: Any
) -> None:
    """The feed's copy can be older than the active set's (a read that was not kept): no job may stall on it."""
    monitor_settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(monitor_settings.sql_url())
    sites = SiteDirectory(monitor_settings.submitter_url, monitor_settings.identity_secret)
    events = EventPublisher(couch.db(monitor_settings.events_db), "/test")
    loop = MonitorLoop(couch, monitor_settings, sites, events, JobCounter(engine, "t"))
    db = loop.dbs[monitor_settings.databases[0]]
    try:
        await db.ensure(shards=1)
        written = kit.job_doc("Held_label", "Mod", 1, "site-a")
        await db.bulk_docs([written])
        older = dict(written)
        await _revision(db, written["_id"], status="submitted", backend={"name": "local", "id": "b1"})
        loop.followed[db.name].note(older)

        def start(fresh: dict[str, Any]) -> dict[str, Any] | None:
            return {**fresh, "status": "running"} if backend_id_of(fresh) == "b1" else None

        moved = await loop.writes.write(db.name, [written["_id"]], start, CycleReport())
        assert [doc["status"] for doc in moved] == ["running"]
        stored = await db.get(written["_id"])
        assert stored["status"] == "running" and stored["_rev"].startswith("3-")
        assert loop.followed[db.name].held([written["_id"]])[written["_id"]]["_rev"] == stored["_rev"]
    finally:
        await sites.aclose()
        await engine.dispose()
