"""A follower of a database its own process writes: its own documents from memory, the rest from the server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prodflow_core.couch import BulkResult, Change, ChangesFollower, OwnWrites
from prodflow_core.couch.own_writes import WORTH_IT, fill_docs
from prodflow_core.testing import MakeDb

pytestmark = [pytest.mark.integration, pytest.mark.both_couch]


async def _follow_all(follower: ChangesFollower) -> None:
    while await follower.poll_once(wait=False):
        pass


def _bodies(changes: list[Change]) -> dict[str, dict[str, object]]:
    return {c.id: c.doc for c in changes if c.doc is not None}


async def test_a_follower_hands_over_the_same_documents_as_include_docs(fresh_db: MakeDb) -> None:
    db = await fresh_db("own")
    db.own_writes = OwnWrites()
    other = db.client.db(db.name)  # another writer: its documents come from the server
    own = [{"_id": f"own{i:04d}", "type": "job", "status": "waiting", "n": i} for i in range(WORTH_IT + 100)]
    await db.bulk_docs(own)  # enough to be worth reading without documents
    await other.bulk_docs([{"_id": f"other{i:03d}", "type": "job", "n": i} for i in range(10)])
    gone = (await other.bulk_docs([{"_id": "tomb", "n": 1}]))[0]
    await other.bulk_docs([{"_id": "tomb", "_rev": gone.rev, "_deleted": True, "archived": "x"}])
    moved = await db.get("own0000")
    await db.bulk_docs([{**moved, "status": "running"}])  # a second revision written here

    seen: list[Change] = []

    async def handle(batch: list[Change]) -> None:
        seen.extend(batch)

    plain: list[Change] = []

    async def handle_plain(batch: list[Change]) -> None:
        plain.extend(batch)

    fetched = 0
    revisions = db.revisions

    async def counted_revisions(wanted: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        nonlocal fetched
        fetched += len(wanted)
        return await revisions(wanted)

    db.revisions = counted_revisions  # type: ignore[method-assign]  # counts what goes to the server
    # One batch, read without documents: the 601 of this process from memory, the 11 others by revision.
    await _follow_all(ChangesFollower(db, "own-docs", handle, batch_size=1000, longpoll_s=0.5))
    assert fetched == 11
    await _follow_all(ChangesFollower(other, "server-docs", handle_plain, batch_size=1000, longpoll_s=0.5))
    assert len(seen) == len(plain) == WORTH_IT + 111  # each document once, at its latest revision
    assert _bodies(seen) == _bodies(plain)  # the same bodies and revisions, the tombstone's body included
    assert _bodies(seen)["own0000"]["status"] == "running"
    assert {c.id for c in seen if c.deleted} == {"tomb"}
    assert not db.own_writes  # each taken as its change was read: nothing is kept once the follower caught up


async def test_a_revision_the_server_no_longer_has_makes_the_batch_be_read_with_its_documents(
    fresh_db: MakeDb,
) -> None:
    db = await fresh_db("own-missing")
    db.own_writes = OwnWrites()
    await db.bulk_docs([{"_id": "a", "n": 1}])
    rows: list[dict[str, Any]] = [{"id": "a", "changes": [{"rev": "1-00000000000000000000000000000000"}]}]
    assert not await fill_docs(db, rows)  # neither written here nor on the server: the caller reads the batch again
    current = await db.get("a")
    rows = [{"id": "a", "changes": [{"rev": current["_rev"]}]}]
    assert await fill_docs(db, rows) and rows[0]["doc"] == current


async def test_a_reader_waits_for_a_write_of_its_process_still_in_flight(fresh_db: MakeDb) -> None:
    db = await fresh_db("own-flight")
    own = db.own_writes = OwnWrites()
    docs = [{"_id": "b", "n": 2}]
    with own.writing(docs) as stored:
        waiting = asyncio.create_task(own.settled(["b"]))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the reader saw the change before the writer saw the server's answer
        results = await db.client.db(db.name).bulk_docs([dict(docs[0])])
        stored(results)
    await asyncio.wait_for(waiting, 1)
    assert own.take("b", str(results[0].rev)) == {"_id": "b", "n": 2, "_rev": results[0].rev}
    assert own.take("b", str(results[0].rev)) is None and not own  # taken once: nothing is kept after


def test_only_the_newest_documents_are_kept() -> None:
    own = OwnWrites(capacity=2)

    async def write() -> None:
        for name in ("x", "y", "z"):
            with own.writing([{"_id": name}]) as stored:
                stored([BulkResult(id=name, rev="1-a", error=None, reason=None)])

    asyncio.run(write())
    assert own.take("x", "1-a") is None and own.take("z", "1-a") == {"_id": "z", "_rev": "1-a"}
