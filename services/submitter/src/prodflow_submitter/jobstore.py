"""Job documents in CouchDB, in bulk: creation, status moves with ``_rev``, and the queries submitter needs."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prodflow_core import jobdocs
from prodflow_core.couch import CouchDatabase

Doc = dict[str, Any]
Change = Callable[[Doc], Doc | None]
"""Returns the new document, or ``None`` to leave it (not applicable any more)."""


CREATE_PARALLEL = 2  # chunks of _bulk_docs in flight at once
FIRST_CHUNK = 100  # chunks grow from this size: the first jobs are submitted while the rest is being created


@dataclass
class BulkOutcome:
    """Documents written and ids left alone (their change did not apply, or they were missing)."""

    written: list[Doc] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


async def create_docs(
    db: CouchDatabase, docs: Iterable[Doc], chunk_size: int, on_created: Callable[[list[Doc]], None] | None = None
) -> tuple[int, int]:
    """Create documents with ``_bulk_docs``; existing ids are left as they are. Returns (created, existing).

    ``docs`` is read lazily, one chunk at a time, with up to :data:`CREATE_PARALLEL` chunks at the server: the
    next chunk is built while the server stores the previous one, and a large campaign is never all in memory.
    ``on_created`` is told each chunk's newly created documents as soon as the server stored them. Chunks double
    from :data:`FIRST_CHUNK` up to ``chunk_size``: the first jobs are submitted within milliseconds, and their
    claims, which the database's writer takes in turn with the chunks, never wait behind a big one.
    """
    created = existing = 0
    pending: set[asyncio.Task[tuple[int, int]]] = set()
    source = iter(docs)
    size = min(chunk_size, FIRST_CHUNK)
    try:
        while chunk := list(itertools.islice(source, size)):
            size = min(chunk_size, 2 * size)
            if len(pending) >= CREATE_PARALLEL:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    c, e = task.result()
                    created, existing = created + c, existing + e
            pending.add(asyncio.create_task(_create_chunk(db, chunk, on_created)))
        for c, e in await asyncio.gather(*pending):
            created, existing = created + c, existing + e
    finally:
        for task in pending:
            task.cancel()
    return created, existing


async def _create_chunk(
    db: CouchDatabase, chunk: list[Doc], on_created: Callable[[list[Doc]], None] | None
) -> tuple[int, int]:
    results = await db.bulk_docs(chunk, chunk_size=len(chunk))
    failed = [r for r in results if not r.ok and r.error != "conflict"]
    if failed:
        raise RuntimeError(f"{len(failed)} job documents refused, e.g. {failed[0].id}: {failed[0].reason}")
    if on_created is not None:
        on_created([{**doc, "_rev": r.rev} for doc, r in zip(chunk, results, strict=True) if r.ok])
    return sum(r.ok for r in results), sum(r.error == "conflict" for r in results)


async def update_many(db: CouchDatabase, docs: Iterable[Doc], change: Change, *, attempts: int = 5) -> BulkOutcome:
    """Apply ``change`` to each document and write all in bulk; conflicts are re-read and re-applied."""
    outcome = BulkOutcome()
    pending = list(docs)
    for _ in range(attempts):
        if not pending:
            break
        new_docs: list[Doc] = []
        for doc in pending:
            new = change(doc)
            if new is None:
                outcome.skipped.append(str(doc["_id"]))
            else:
                new_docs.append(new)
        results = await db.bulk_docs(new_docs) if new_docs else []
        conflicted: list[str] = []
        for new, result in zip(new_docs, results, strict=True):
            if result.ok:
                outcome.written.append(new)
            elif result.error == "conflict":
                conflicted.append(result.id)
            else:
                outcome.skipped.append(result.id)
        fresh = await db.get_many(conflicted)
        outcome.skipped.extend(i for i in conflicted if i not in fresh)
        pending = [fresh[i] for i in conflicted if i in fresh]
    outcome.skipped.extend(str(d["_id"]) for d in pending)
    return outcome


def moving_to(wanted: str, at: str, reason: str, extra: Callable[[Doc], Doc] | None = None) -> Change:
    """A change that moves a job to ``wanted`` when the state machine allows it (else leaves it)."""

    def change(doc: Doc) -> Doc | None:
        if not jobdocs.can_transition(str(doc.get("status")), wanted):
            return None
        new = jobdocs.transition(doc, wanted, at, reason)
        return extra(new) if extra else new

    return change


def non_final(statuses: Iterable[str] = jobdocs.STATUSES) -> list[str]:
    return [s for s in statuses if s not in jobdocs.FINAL_STATUSES]
