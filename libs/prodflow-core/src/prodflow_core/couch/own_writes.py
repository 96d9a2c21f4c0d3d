"""A process's own recent writes to a database, so its ``_changes`` readers need not ask the server for them back.

Measured on CouchDB 3.5 over 100,000 job documents: reading ``_changes`` with ``include_docs=true`` costs the server
~15 s of CPU, as much as 70 % of writing them (~21 s); without the documents ~4 s. A service that follows the
database it writes (the submitter creating a campaign, the monitor moving jobs) read every document it had just
sent back from the server. With :class:`OwnWrites` on a :class:`~prodflow_core.couch.database.CouchDatabase`, its
``_bulk_docs`` remembers what it wrote (id, revision, body). While it holds :data:`WORTH_IT` or more (a campaign
being created), a follower of that database reads ``_changes`` without documents, takes the ones whose revision it
wrote from here, and fetches the others by revision with one ``_bulk_get`` (which costs the server what
``include_docs`` did). What cannot be had so (a revision compacted away) makes the follower read the batch again
with its documents: nothing changes for its handler.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prodflow_core.couch.database import BulkResult, CouchDatabase

Doc = dict[str, Any]
CAPACITY = 20_000
"""Documents kept per database at most (ten campaign chunks, ~30 MB of job documents), the oldest dropped first;
its follower takes each as it reads its change, so they are kept only while the follower is behind."""
WORTH_IT = 500
"""Kept or in-flight documents from which a batch is read without documents: that read and the ``_bulk_get`` of the
others are two requests, which for a few documents cost more than ``include_docs`` (under ``bench/load.py`` the
services' small steady writes made the answers slower); a campaign's chunks of 2,000 are well above it."""
SETTLE_S = 30.0
"""How long a reader waits for a write of this process still in flight before it asks the server instead."""


class OwnWrites:
    """What this process wrote to one database with ``_bulk_docs``, newest ``capacity`` documents."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._docs: dict[str, Doc] = {}
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        """Documents kept or being written."""
        return len(self._docs) + len(self._in_flight)

    def worth_reading_without_docs(self) -> bool:
        """True while the follower is likely to find many of its batch here (:data:`WORTH_IT`)."""
        return len(self) >= WORTH_IT

    @contextlib.contextmanager
    def writing(self, docs: Sequence[Doc]) -> Iterator[Callable[[Sequence[BulkResult]], None]]:
        """Around one ``_bulk_docs`` of ``docs``: a reader that sees their changes first waits for its end. Call
        what it yields with the results (one per document, in order) to keep the stored ones."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for doc in docs:
            if "_id" in doc:
                self._in_flight[str(doc["_id"])] = done

        def stored(results: Sequence[BulkResult]) -> None:
            for doc, result in zip(docs, results, strict=True):
                if result.ok and result.rev and "_attachments" not in doc:  # the server answers attachment stubs
                    self._docs.pop(result.id, None)  # re-inserted last: the dict's order is the writes' order
                    self._docs[result.id] = {**doc, "_id": result.id, "_rev": result.rev}
            while len(self._docs) > self.capacity:
                del self._docs[next(iter(self._docs))]

        try:
            yield stored
        finally:
            for doc in docs:
                if self._in_flight.get(str(doc.get("_id"))) is done:
                    del self._in_flight[str(doc["_id"])]
            done.set_result(None)

    async def settled(self, doc_ids: Iterable[str]) -> None:
        """Wait (up to :data:`SETTLE_S`) for this process's writes in flight of any of ``doc_ids``."""
        waits = {f for doc_id in doc_ids if (f := self._in_flight.get(doc_id)) is not None}
        if waits:
            await asyncio.wait(waits, timeout=SETTLE_S)

    def take(self, doc_id: str, rev: str) -> Doc | None:
        """The body this process wrote as revision ``rev`` of ``doc_id``, if it is still kept; it is kept no longer
        (a database has one follower per process: what it has read is not asked for again)."""
        doc = self._docs.pop(doc_id, None)
        return doc if doc is not None and doc.get("_rev") == rev else None

    def discard(self, doc_ids: Iterable[str]) -> None:
        """Forget ``doc_ids``: their changes were read with their documents."""
        for doc_id in doc_ids:
            self._docs.pop(doc_id, None)


async def fill_docs(db: CouchDatabase, rows: list[Doc]) -> bool:
    """Put each ``_changes`` row's document in ``row["doc"]``, as ``include_docs`` would: from ``db.own_writes``,
    else one ``_bulk_get`` by revision. ``False`` if some could not be had (the caller reads them with the batch)."""
    own = db.own_writes
    assert own is not None
    await own.settled(str(row["id"]) for row in rows)
    missing: dict[tuple[str, str], Doc] = {}
    for row in rows:
        rev = str(row["changes"][0]["rev"]) if row.get("changes") else ""
        doc = own.take(str(row["id"]), rev)
        if doc is not None:
            row["doc"] = doc
        else:
            missing[(str(row["id"]), rev)] = row
    if not missing:
        return True
    for fetched in await db.revisions(list(missing)):
        if (asked := missing.pop((str(fetched.get("_id")), str(fetched.get("_rev"))), None)) is not None:
            asked["doc"] = fetched
    return not missing
