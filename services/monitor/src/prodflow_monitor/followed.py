"""Job documents as this replica last followed them: listings and the loop's writes read them without CouchDB.

The ``_changes`` follower hands every job document of this replica's share to :meth:`FollowedDocs.note` (before
the kept counts take the change), and the loop notes each revision it writes. A listing then finds most of a page
here, and the loop's next move of a job starts from the revision it holds; only what is missing is read from
CouchDB (and kept, if this replica owns it). So a job list costs CouchDB nothing when its jobs moved recently or
were listed recently, and a trivial job's moves cost no re-read before each write.

What is held is never older than what the feed delivered: a revision replaces only an older or equal one, and a
document is dropped when the feed deletes it. A document read from CouchDB is kept only if this replica owns it
(the feed keeps nothing else up to date) and it was not dropped or evicted while the read was in flight: the feed
may have delivered a newer revision meanwhile, which the read's answer would otherwise replace.

Memory is bounded: the least recently used documents go first, ``capacity`` documents of ~1 KB (kept as JSON
bytes, decoded per read, so a caller may change what it gets). Listings read the same pages again and again:
their form of a document (:func:`~prodflow_monitor.listing.listing_form`) is decoded once per revision and
shared, for the ``SHOWN_CAPACITY`` documents listed last (:attr:`FollowedDocs.listing`). Decoding every
document of every page was an eighth of the monitor's CPU under ``bench/load.py``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import orjson
from prodflow_core.couch import CouchDatabase, rev_number

from prodflow_monitor.listing import listing_form

Doc = dict[str, Any]

SHOWN_CAPACITY = 5_000
"""Listing forms kept decoded (a few KB each as Python objects)."""


class FollowedDocs:
    """The newest followed revisions of up to ``capacity`` job documents of one database (module docstring)."""

    def __init__(self, db: CouchDatabase, capacity: int, owns: Callable[[str], bool]) -> None:
        self.db = db
        self.capacity = capacity
        self._owns = owns
        self._held: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._reads: dict[int, set[str]] = {}
        """Per read in flight: the ids dropped or evicted since it began (its answer may be older for them)."""
        self._shown: OrderedDict[str, tuple[bytes, Doc]] = OrderedDict()
        """Listing forms by id, each with the held JSON it was decoded from (stale once that is replaced)."""
        self.listing = ListingView(self)
        """What a listing reads (:class:`ListingView`)."""

    @property
    def name(self) -> str:
        """The database's name."""
        return self.db.name

    def __len__(self) -> int:
        return len(self._held)

    def note(self, doc: Mapping[str, Any]) -> None:
        """Hold ``doc`` (a revision the feed delivered or this replica wrote) unless a newer one is held."""
        doc_id = str(doc["_id"])
        if not self._owns(doc_id) or self.capacity == 0:
            return
        generation = rev_number(doc)
        held = self._held.get(doc_id)
        if held is not None and held[0] > generation:
            return
        self._held[doc_id] = (generation, orjson.dumps(doc))
        self._held.move_to_end(doc_id)
        while len(self._held) > self.capacity:
            self._lost(self._held.popitem(last=False)[0])

    def drop(self, doc_id: str) -> None:
        """Forget ``doc_id`` (deleted, or a write of it conflicted: what is held is not the current revision)."""
        if self._held.pop(doc_id, None) is not None:
            self._lost(doc_id)

    def _lost(self, doc_id: str) -> None:
        self._shown.pop(doc_id, None)
        for read in self._reads.values():
            read.add(doc_id)

    def held(self, doc_ids: Iterable[str]) -> dict[str, Doc]:
        """The held documents among ``doc_ids``, by id (each a fresh copy)."""
        found: dict[str, Doc] = {}
        for doc_id in doc_ids:
            held = self._held.get(doc_id)
            if held is not None:
                self._held.move_to_end(doc_id)
                found[doc_id] = orjson.loads(held[1])
        return found

    def shown(self, doc_ids: Iterable[str]) -> dict[str, Doc]:
        """The listing forms of the held documents among ``doc_ids``, by id: shared, never to be changed."""
        found: dict[str, Doc] = {}
        for doc_id in doc_ids:
            held = self._held.get(doc_id)
            if held is None:
                continue
            self._held.move_to_end(doc_id)
            cached = self._shown.get(doc_id)
            if cached is not None and cached[0] is held[1]:
                self._shown.move_to_end(doc_id)
                found[doc_id] = cached[1]
                continue
            found[doc_id] = form = listing_form(orjson.loads(held[1]))
            self._shown[doc_id] = (held[1], form)
            self._shown.move_to_end(doc_id)
            if len(self._shown) > SHOWN_CAPACITY:
                self._shown.popitem(last=False)
        return found

    async def get_many(self, doc_ids: Sequence[str], *, keep: bool = True) -> dict[str, Doc]:
        """The existing documents among ``doc_ids``, by id: those held, the rest read from CouchDB (one request)
        and kept, unless ``keep`` is false (a read over a whole label must not push the active jobs out)."""
        found = self.held(doc_ids)
        missing = [doc_id for doc_id in doc_ids if doc_id not in found]
        if missing:
            found.update(await self.read(missing) if keep else await self.db.get_many(missing))
        return found

    async def read(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        """Read ``doc_ids`` from CouchDB, keeping what this replica owns (see the module docstring)."""
        lost: set[str] = set()
        self._reads[id(lost)] = lost
        try:
            docs = await self.db.get_many(doc_ids)
        finally:
            del self._reads[id(lost)]
        for doc_id, doc in docs.items():
            if doc_id not in lost and doc.get("type") == "job":
                self.note(doc)
        return docs


class ListingView:
    """A listing's source (:class:`~prodflow_monitor.listing.JobSource`) of one database: the held documents in
    their listing form, shared (see :meth:`FollowedDocs.shown`), the rest read from CouchDB and kept."""

    def __init__(self, followed: FollowedDocs) -> None:
        self._followed = followed

    @property
    def name(self) -> str:
        """The database's name."""
        return self._followed.name

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        """The existing documents among ``doc_ids`` in their listing form, by id; the caller must not change them."""
        found = self._followed.shown(doc_ids)
        if missing := [doc_id for doc_id in doc_ids if doc_id not in found]:
            read = await self._followed.read(missing)
            found.update({doc_id: listing_form(doc) for doc_id, doc in read.items()})
        return found
