"""One CouchDB database: documents with ``_rev``, bulk writes, reads by id, views, ``_find`` and ``_changes``."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from prodflow_core.couch.errors import CouchError, DocumentConflict, DocumentNotFound

if TYPE_CHECKING:
    from prodflow_core.couch.client import CouchClient
    from prodflow_core.couch.own_writes import OwnWrites

Doc = dict[str, Any]
_log = logging.getLogger("prodflow.couch.database")
DEFAULT_BULK_CHUNK = 2000


@dataclass(frozen=True)
class BulkResult:
    """The outcome of one document in a ``_bulk_docs`` call."""

    id: str
    rev: str | None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ViewResult:
    """Rows of a view query."""

    rows: list[dict[str, Any]]
    total_rows: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class ChangesBatch:
    """One batch of ``_changes`` results and the sequence to resume after it."""

    results: list[dict[str, Any]]
    last_seq: str
    pending: int | None = None


def _seq(value: Any) -> str:
    # CouchDB 3 sequences are opaque strings; PouchDB Server's are integers. Keep both as text.
    return value if isinstance(value, str) else json.dumps(value)


def seq_number(seq: str) -> int:
    """How many changes a database had made at ``seq``: the number it starts with (CouchDB 3 sums its shards').
    Enough to tell how far one position trails another; never a test of two positions being the same."""
    head = seq.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


_SEQ = re.compile(r"^(?:now|\d+|\d+-[A-Za-z0-9_-]+)$")


def looks_like_seq(value: str) -> bool:
    """True if ``value`` has the shape of an update sequence: CouchDB 3's ``N-opaque`` or PouchDB's integer.

    PouchDB Server answers an unparsable ``since`` with an empty, never-ending feed instead of CouchDB's 400,
    so callers taking a sequence from outside check its shape first.
    """
    return bool(_SEQ.match(value))


def rev_number(doc: Mapping[str, Any]) -> int:
    """The generation of a document's ``_rev`` (``3-abc`` → 3; none → 0)."""
    return int(str(doc.get("_rev", "0-")).split("-", 1)[0] or 0)


def rows_by_doc(docs: Sequence[Mapping[str, Any]], rows: Sequence[Doc]) -> list[Doc]:
    """The ``_bulk_docs`` answer row of each of ``docs``, in the order of ``docs``.

    CouchDB answers in the order sent, PouchDB Server does not once some documents conflict: rows are matched by
    id (in order among documents of one id), and documents sent without ``_id`` take the rows of ids nobody sent.
    """
    waiting: dict[str, deque[int]] = {}
    unnamed: deque[int] = deque()
    for index, doc in enumerate(docs):
        if "_id" in doc:
            waiting.setdefault(str(doc["_id"]), deque()).append(index)
        else:
            unnamed.append(index)
    matched: list[Doc | None] = [None] * len(docs)
    for row in rows:
        named = waiting.get(str(row.get("id")))
        queue = named if named else unnamed
        if queue:
            matched[queue.popleft()] = row
    if any(row is None for row in matched):
        raise CouchError(502, "bad_answer", f"_bulk_docs answered {len(rows)} rows for {len(docs)} documents")
    return [row for row in matched if row is not None]


def _doc_path(doc_id: str) -> str:
    if doc_id.startswith(("_design/", "_local/")):
        prefix, _, rest = doc_id.partition("/")
        return f"{prefix}/{quote(rest, safe='')}"
    return quote(doc_id, safe="")


class CouchDatabase:
    """One CouchDB database."""

    def __init__(self, client: CouchClient, name: str) -> None:
        self.client = client
        self.name = name
        self._base = quote(name, safe="")
        self.own_writes: OwnWrites | None = None
        """Set by a service that follows what it writes here (see :mod:`prodflow_core.couch.own_writes`)."""

    def _path(self, rest: str = "") -> str:
        return f"{self._base}/{rest}" if rest else self._base

    async def ensure(self, *, shards: int | None = None) -> None:
        """Create the database unless it exists (412 from the server).

        ``shards`` (CouchDB's ``q``, used only when the database is created): a CouchDB 3 database of several
        shards has no single order of ``_changes``; ``shards=1`` gives one, the order of the writes. PouchDB
        Server has one order anyway and ignores it.

        A member account (not a server admin) may not create databases: for it a database that exists and that
        it can read is enough, and one it cannot create raises the server's 401/403.
        """
        params = {"q": shards} if shards is not None else None
        try:
            await self.client.request("PUT", self._path(), params=params, ok_statuses=(412,))
        except CouchError as exc:
            if exc.status not in (401, 403):
                raise
            try:
                await self.info()
            except CouchError:
                raise exc from None

    async def drop(self) -> None:
        """Delete the database if it exists."""
        await self.client.request("DELETE", self._path(), ok_statuses=(404,))

    async def info(self) -> Doc:
        """``GET /db``: doc count, update sequence, ..."""
        return await self.client.request("GET", self._path())  # type: ignore[no-any-return]

    async def get(self, doc_id: str) -> Doc:
        """The document ``doc_id``; :class:`DocumentNotFound` if absent."""
        return await self.client.request("GET", self._path(_doc_path(doc_id)))  # type: ignore[no-any-return]

    async def get_or_none(self, doc_id: str) -> Doc | None:
        """The document ``doc_id`` or ``None``."""
        try:
            return await self.get(doc_id)
        except DocumentNotFound:
            return None

    async def put(self, doc: Doc) -> str:
        """Write ``doc`` (its ``_rev`` must be current); sets and returns the new ``_rev``.

        Raises :class:`DocumentConflict` when the stored revision differs.
        """
        answer = await self.client.request("PUT", self._path(_doc_path(doc["_id"])), json_body=doc)
        doc["_rev"] = answer["rev"]
        return str(answer["rev"])

    async def delete(self, doc_id: str, rev: str) -> None:
        """Delete one revision of a document."""
        await self.client.request("DELETE", self._path(_doc_path(doc_id)), params={"rev": rev})

    async def update(self, doc_id: str, change: Callable[[Doc], Doc | None], *, attempts: int = 10) -> Doc | None:
        """Read-modify-write with ``_rev``: on a conflict re-read and re-apply ``change``, never overwrite.

        ``change`` gets the current document (``{"_id": doc_id}`` if absent) and returns the new one, or ``None``
        to leave it as it is. Returns the written document, or ``None`` if nothing was written.
        """
        for _ in range(attempts):
            current = await self.get_or_none(doc_id) or {"_id": doc_id}
            new = change(current)
            if new is None:
                return None
            try:
                await self.put(new)
            except DocumentConflict:
                continue
            return new
        raise DocumentConflict(409, "conflict", f"{doc_id}: still conflicting after {attempts} attempts")

    async def bulk_docs(self, docs: Sequence[Doc], *, chunk_size: int = DEFAULT_BULK_CHUNK) -> list[BulkResult]:
        """Write ``docs`` with ``_bulk_docs`` in chunks; per-document errors (conflicts) come back as results, one
        per document in the order of ``docs``. Each stored document gets its new ``_rev``."""
        results: list[BulkResult] = []
        for start in range(0, len(docs), chunk_size):
            chunk = docs[start : start + chunk_size]
            writing = self.own_writes.writing(chunk) if self.own_writes is not None else contextlib.nullcontext()
            with writing as stored:
                answer = await self.client.request("POST", self._path("_bulk_docs"), json_body={"docs": list(chunk)})
                for doc, row in zip(chunk, rows_by_doc(chunk, answer), strict=True):
                    result = BulkResult(
                        id=str(row.get("id", doc.get("_id"))),
                        rev=row.get("rev"),
                        error=row.get("error"),
                        reason=row.get("reason"),
                    )
                    if result.ok and result.rev:
                        doc["_rev"] = result.rev
                    results.append(result)
                if stored is not None:
                    stored(results[start:])
        return results

    async def write_as_is(self, docs: Sequence[Doc], *, chunk_size: int = DEFAULT_BULK_CHUNK) -> None:
        """Store ``docs`` with the revisions they carry (``_bulk_docs`` with ``new_edits: false``, as replication
        does): a revision the database has already is left as it is, so writing twice changes nothing."""
        for start in range(0, len(docs), chunk_size):
            chunk = list(docs[start : start + chunk_size])
            await self.client.request("POST", self._path("_bulk_docs"), json_body={"docs": chunk, "new_edits": False})

    async def purge(self, revisions: Mapping[str, Sequence[str]]) -> Doc:
        """``_purge``: remove the given leaf revisions of documents entirely (CouchDB 2.3+; PouchDB Server refuses it
        with a 400). CouchDB takes at most 100 document ids per request by default: callers send that many."""
        body = {doc_id: list(revs) for doc_id, revs in revisions.items()}
        answer: Doc = await self.client.request("POST", self._path("_purge"), json_body=body)
        return answer

    async def compact(self) -> None:
        """Ask the server to compact the database (it runs in the background)."""
        await self.client.request("POST", self._path("_compact"), json_body={})

    async def all_docs(
        self, *, keys: Sequence[str] | None = None, include_docs: bool = False, **params: Any
    ) -> ViewResult:
        """``_all_docs``, optionally for given ``keys`` (sent in the body)."""
        query = {"include_docs": include_docs, **params}
        if keys is not None:
            answer = await self.client.request(
                "POST", self._path("_all_docs"), params=query, json_body={"keys": list(keys)}
            )
        else:
            answer = await self.client.request("GET", self._path("_all_docs"), params=query)
        return ViewResult(rows=answer["rows"], total_rows=answer.get("total_rows"), offset=answer.get("offset"))

    async def get_many(self, doc_ids: Sequence[str]) -> dict[str, Doc]:
        """The existing documents among ``doc_ids``, by id (one ``_bulk_get``; deleted ones left out).

        ``_bulk_get`` rather than ``_all_docs?keys=&include_docs=true``: measured here, it reads 50 documents in
        ~10 ms instead of 20-26 on CouchDB 3 (6.5 instead of 9-13 on PouchDB Server), 2,000 in ~0.23 s instead of
        0.65-0.79. A missing document comes back as an error entry (CouchDB) or an empty one (PouchDB Server).
        """
        if not doc_ids:
            return {}
        found = await self._bulk_get([{"id": doc_id} for doc_id in doc_ids])
        return {doc["_id"]: doc for doc in found if not doc.get("_deleted")}

    async def revisions(self, wanted: Sequence[tuple[str, str]]) -> list[Doc]:
        """The given revisions, ``(id, rev)``, deleted ones included, with one ``_bulk_get``; those the server no
        longer has are left out."""
        return await self._bulk_get([{"id": doc_id, "rev": rev} for doc_id, rev in wanted])

    async def _bulk_get(self, asked: list[Doc]) -> list[Doc]:
        """The documents ``_bulk_get`` found for ``asked`` (error entries and empty ones left out)."""
        answer = await self.client.request("POST", self._path("_bulk_get"), json_body={"docs": asked})
        return [entry["ok"] for result in answer["results"] for entry in result.get("docs") or [] if entry.get("ok")]

    async def view(
        self,
        ddoc: str,
        view: str,
        *,
        keys: Sequence[Any] | None = None,
        **params: Any,
    ) -> ViewResult:
        """Query ``_design/ddoc/_view/view``; ``reduce``, ``group``, ``group_level``, key ranges as parameters."""
        path = self._path(f"_design/{quote(ddoc, safe='')}/_view/{quote(view, safe='')}")
        if keys is not None:
            answer = await self.client.request("POST", path, params=params, json_body={"keys": list(keys)})
        else:
            answer = await self.client.request("GET", path, params=params)
        return ViewResult(rows=answer["rows"], total_rows=answer.get("total_rows"), offset=answer.get("offset"))

    async def find(
        self,
        selector: Doc,
        *,
        fields: Sequence[str] | None = None,
        sort: Sequence[Any] | None = None,
        limit: int | None = None,
        skip: int | None = None,
        bookmark: str | None = None,
        use_index: str | Sequence[str] | None = None,
    ) -> tuple[list[Doc], str | None]:
        """Mango ``_find``: the matching documents and the bookmark of the next page."""
        body: Doc = {"selector": selector}
        for name, value in (
            ("fields", fields),
            ("sort", sort),
            ("limit", limit),
            ("skip", skip),
            ("bookmark", bookmark),
            ("use_index", use_index),
        ):
            if value is not None:
                body[name] = list(value) if isinstance(value, tuple) else value
        answer = await self.client.request("POST", self._path("_find"), json_body=body)
        return list(answer["docs"]), answer.get("bookmark")

    async def create_index(self, fields: Sequence[str], *, name: str, ddoc: str | None = None) -> None:
        """Create a Mango index (idempotent)."""
        body: Doc = {"index": {"fields": list(fields)}, "name": name, "type": "json"}
        if ddoc:
            body["ddoc"] = ddoc
        await self.client.request("POST", self._path("_index"), json_body=body)

    async def changes(
        self,
        *,
        since: str = "0",
        limit: int | None = None,
        include_docs: bool = False,
        longpoll_s: float | None = None,
        selector: Doc | None = None,
    ) -> ChangesBatch:
        """One batch of ``_changes`` after ``since``.

        With ``longpoll_s`` the request waits up to that long for a change. PouchDB Server ignores the
        ``timeout`` parameter of a longpoll feed, so the wait is also bounded here on the client: a read
        timeout is an empty batch. This is the one place that works around it.

        ``selector``: only the changes whose document matches this Mango selector (``filter=_selector``, sent in
        a POST body; a long poll then waits for a matching change). CouchDB 2+ only: PouchDB Server has no
        ``POST _changes`` (see :meth:`CouchClient.filters_changes`).
        """
        params: dict[str, Any] = {"since": since, "limit": limit, "include_docs": include_docs}
        timeout: float | None = None
        if longpoll_s is not None:
            params.update(feed="longpoll", timeout=int(longpoll_s * 1000), heartbeat=None)
            timeout = longpoll_s + 5.0
        method, body = "GET", None
        if selector is not None:
            params["filter"] = "_selector"
            method, body = "POST", {"selector": selector}
        try:
            answer = await self.client.request(
                method, self._path("_changes"), params=params, json_body=body, timeout=timeout
            )
        except httpx.ReadTimeout:
            if longpoll_s is None:
                raise  # a plain read that timed out says nothing about what is there
            _log.debug("long poll of %s since %.40s: no answer within %s s, taken as empty", self.name, since, timeout)
            return ChangesBatch(results=[], last_seq=since)
        return ChangesBatch(
            results=list(answer["results"]), last_seq=_seq(answer["last_seq"]), pending=answer.get("pending")
        )

    async def update_seq(self) -> str:
        """The current update sequence (where a follower starting ``now`` begins)."""
        return _seq((await self.info())["update_seq"])

    async def get_local(self, name: str) -> Doc | None:
        """A ``_local`` document (not replicated, not in ``_changes``)."""
        return await self.get_or_none(f"_local/{name}")

    async def put_local(self, name: str, body: Doc, *, rev: str | None = None) -> str:
        """Write a ``_local`` document over its current revision; returns the new revision.

        ``rev``: the revision this caller wrote last, which saves reading the current one first (a stale one
        is a conflict: then it is read).
        """
        doc_id = f"_local/{name}"
        if rev is not None:
            with contextlib.suppress(DocumentConflict):
                return await self.put({**body, "_id": doc_id, "_rev": rev})
        current = await self.get_or_none(doc_id)
        doc = {**body, "_id": doc_id}
        if current and "_rev" in current:
            doc["_rev"] = current["_rev"]
        return await self.put(doc)


__all__ = [
    "BulkResult",
    "ChangesBatch",
    "CouchClient",
    "CouchDatabase",
    "CouchError",
    "Doc",
    "ViewResult",
    "looks_like_seq",
]
