"""Job documents as last followed: never older than the feed, bounded, owned only; a real CouchDB-API server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prodflow_core.couch import CouchDatabase
from prodflow_core.testing import MakeDb
from prodflow_monitor.followed import FollowedDocs

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
