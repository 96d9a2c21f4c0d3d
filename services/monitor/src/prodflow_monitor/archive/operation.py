"""Archiving a finished label and restoring it: resumable steps whose state is kept in SQL (``tables``).

Archive: ``archiving`` pages through the label's job documents (``_all_docs`` over the id prefix
``job:<label>:``, :data:`~prodflow_monitor.archive.files.MEMBER_DOCS` at a time) into one gzip member each of
``jobs-<database>.jsonl.gz``, indexing every job; copies the label's events into ``events.jsonl.gz``; writes
``manifest.json`` last (→ ``written``). ``removing`` takes the documents out of the job databases: ``_purge``
where the server has it (CouchDB 3: they vanish from ``_changes`` and views, and a restore can put the very same
revision back), else a deletion whose tombstone carries the archive mark (PouchDB Server), which every counter
skips, then a compaction (→ ``archived``). The events stay in the shared stream (consumers follow it by sequence);
the archive holds a copy.

Restore checks every file against the manifest, then writes the documents back (→ ``restored``): with
``new_edits: false`` where they were purged (same ``_id``, ``_rev`` and body), else as a new revision on top of the
tombstone (same ``_id`` and body). Each step can run again: documents already removed, or already back, are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prodflow_core.couch import CouchDatabase, CouchError
from prodflow_core.counts import archival_tombstone, label_counts, module_stats
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import FINAL_STATUSES, label_id_prefix, label_id_range
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_monitor.archive.files import (
    ARCHIVE_FORMAT,
    MEMBER_DOCS,
    ArchiveWriter,
    FileRecord,
    check_file,
    jobs_file_name,
    members_of,
    read_manifest,
    write_manifest,
)
from prodflow_monitor.archive.tables import (
    ARCHIVED,
    REMOVING,
    RESTORING,
    WRITTEN,
    ArchiveRecord,
    add_index_rows,
    drop_archive,
    finish_restore,
    index_page,
    index_row,
    load_archive,
    set_archive,
    start_archive,
)

_log = logging.getLogger("prodflow.monitor.archive")
PURGE_IDS = 100  # CouchDB's default purge limit of document ids per request
PURGE, DELETE = "purge", "delete"


class ArchiveError(RuntimeError):
    """The archival cannot go on (a job not final, or changed since it was archived)."""


@dataclass(frozen=True)
class ArchiveStores:
    """Where archival reads and writes: the monitor's SQL, the job databases and the event stream."""

    engine: AsyncEngine
    dbs: Sequence[CouchDatabase]
    events: CouchDatabase


async def _job_pages(db: CouchDatabase, label: str) -> Any:
    """The label's job documents of ``db``, :data:`MEMBER_DOCS` at a time, in id order."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {**label_id_range(label), "limit": MEMBER_DOCS}
        if after is not None:
            params.update(startkey=after, skip=1)
        rows = (await db.all_docs(include_docs=True, **params)).rows
        docs = [row["doc"] for row in rows if row.get("doc") and row["doc"].get("label") == label]
        if docs:
            yield docs
        if len(rows) < MEMBER_DOCS:
            return
        after = rows[-1]["id"]


def _is_label_event(doc: Mapping[str, Any], label: str) -> bool:
    data = doc.get("data") or {}
    prefix = label_id_prefix(label)
    if data.get("label") == label or str(doc.get("subject") or "").startswith(prefix):
        return True
    outputs = data.get("outputs") or []
    return any(str(out.get("job_id", "")).startswith(prefix) for out in outputs if isinstance(out, dict))


async def _write_jobs(
    stores: ArchiveStores, record: ArchiveRecord, db: CouchDatabase, done_before: int
) -> FileRecord | None:
    writer = ArchiveWriter(record.folder, jobs_file_name(db.name))
    opened = False
    async for docs in _job_pages(db, record.label):
        unfinished = [str(doc["_id"]) for doc in docs if doc.get("status") not in FINAL_STATUSES]
        if unfinished:
            raise ArchiveError(f"{len(unfinished)} jobs of {record.label} are not final, e.g. {unfinished[0]}")
        if not opened:
            await writer.open()
            opened = True
        member = await writer.write(docs)
        await add_index_rows(stores.engine, [index_row(db.name, record.label, doc, member) for doc in docs])
        done = done_before + writer.documents
        await set_archive(stores.engine, record.label, done=done, updated_at=utc_now())
    return await writer.close() if opened else None


async def _write_events(stores: ArchiveStores, record: ArchiveRecord) -> FileRecord:
    """Copy the label's events into ``events.jsonl.gz`` (a scan of the stream: an admin's batch, not a hot path)."""
    writer = ArchiveWriter(record.folder, "events.jsonl.gz")
    await writer.open()
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": MEMBER_DOCS}
        if after is not None:
            params.update(startkey=after, skip=1)
        rows = (await stores.events.all_docs(include_docs=True, **params)).rows
        events = [row["doc"] for row in rows if row.get("doc") and _is_label_event(row["doc"], record.label)]
        if events:
            await writer.write(events)
        if len(rows) < MEMBER_DOCS:
            break
        after = rows[-1]["id"]
    return await writer.close()


async def write_archive(stores: ArchiveStores, record: ArchiveRecord) -> None:
    """``archiving`` → ``written``: the files, the index and the manifest (an earlier attempt's are redone)."""
    await start_archive(stores.engine, record)
    files: dict[str, Any] = {}
    jobs = 0
    for db in stores.dbs:
        written = await _write_jobs(stores, record, db, jobs)
        if written is not None:
            files[db.name] = written.manifest_entry()
            jobs += written.documents
    events = await _write_events(stores, record)
    stats = module_stats(await label_counts(stores.engine, record.label))
    counts: dict[str, int] = {}
    for by_status in stats.values():
        for status, value in by_status.items():
            counts[status] = counts.get(status, 0) + value["jobs"]
    manifest = {
        "format": ARCHIVE_FORMAT,
        "label": record.label,
        "experiment": record.experiment,
        "databases": files,
        "events": events.manifest_entry(),
        "counts": dict(sorted(counts.items())),
        "jobs": jobs,
        "created_at": utc_now(),
        "created_by": record.by,
    }
    await write_manifest(record.folder, manifest)
    await set_archive(stores.engine, record.label, state=WRITTEN, jobs=jobs, done=0, error="", updated_at=utc_now())


async def _removal_method(db: CouchDatabase) -> str:
    """``purge`` if the server takes ``_purge`` (an empty one changes nothing), else ``delete``."""
    try:
        await db.purge({})
    except CouchError as exc:
        _log.info("%s has no usable _purge (%s): archived documents are deleted, then compacted", db.name, exc)
        return DELETE
    return PURGE


async def _remove_page(db: CouchDatabase, label: str, archived: Mapping[str, str], method: str) -> None:
    """Remove the documents ``archived`` (id → archived ``_rev``) still in ``db``; an already removed one is left."""
    rows = (await db.all_docs(keys=list(archived))).rows
    present: dict[str, str] = {}
    for row in rows:
        value = row.get("value") or {}
        if "error" in row or value.get("deleted"):
            continue
        if value.get("rev") != archived[row["id"]]:
            raise ArchiveError(f"{row['id']} changed since it was archived ({archived[row['id']]} → {value['rev']})")
        present[row["id"]] = str(value["rev"])
    if method == PURGE:
        ids = sorted(present)
        for start in range(0, len(ids), PURGE_IDS):
            await db.purge({doc_id: [present[doc_id]] for doc_id in ids[start : start + PURGE_IDS]})
    else:
        results = await db.bulk_docs([archival_tombstone(i, rev, label) for i, rev in sorted(present.items())])
        failed = [result for result in results if not result.ok]
        if failed:
            raise ArchiveError(f"{len(failed)} documents not deleted, e.g. {failed[0].id}: {failed[0].error}")


async def remove_documents(stores: ArchiveStores, record: ArchiveRecord) -> None:
    """``written``/``removing`` → ``archived``: the archived documents leave the job databases."""
    method = record.method
    if not method:
        method = await _removal_method(stores.dbs[0])
    await set_archive(stores.engine, record.label, state=REMOVING, method=method, done=0, updated_at=utc_now())
    by_name = {db.name: db for db in stores.dbs}
    after: tuple[str, str] | None = None
    done = 0
    while rows := await index_page(stores.engine, record.label, after, MEMBER_DOCS):
        for name in sorted({row.database for row in rows}):
            archived = {row.doc_id: row.rev for row in rows if row.database == name}
            await _remove_page(by_name[name], record.label, archived, method)
        done += len(rows)
        after = (rows[-1].database, rows[-1].doc_id)
        await set_archive(stores.engine, record.label, done=done, updated_at=utc_now())
    if method == DELETE:
        for db in stores.dbs:
            await db.compact()  # the deleted bodies' space comes back once it has run
    await set_archive(stores.engine, record.label, state=ARCHIVED, error="", updated_at=utc_now())


async def archive_label(stores: ArchiveStores, record: ArchiveRecord) -> None:
    """Run (or resume) the archival of ``record.label`` from the state it is in."""
    current = await load_archive(stores.engine, record.label)
    if current is None or current.state not in (WRITTEN, REMOVING, ARCHIVED):
        await write_archive(stores, record)
        current = await load_archive(stores.engine, record.label)
    if current is not None and current.state in (WRITTEN, REMOVING):
        await remove_documents(stores, current)


async def _restore_member(db: CouchDatabase, docs: list[dict[str, Any]]) -> None:
    rows = (await db.all_docs(keys=[str(doc["_id"]) for doc in docs])).rows
    state = {row["id"]: row.get("value") or {} for row in rows if "error" not in row}
    purged = [doc for doc in docs if doc["_id"] not in state]
    on_tombstone = [
        {**doc, "_rev": state[doc["_id"]]["rev"]} for doc in docs if state.get(doc["_id"], {}).get("deleted")
    ]
    if purged:
        await db.write_as_is(purged)
    if on_tombstone:
        failed = [result for result in await db.bulk_docs(on_tombstone) if not result.ok]
        if failed:
            raise ArchiveError(f"{len(failed)} documents not restored, e.g. {failed[0].id}: {failed[0].error}")


async def restore_label(stores: ArchiveStores, record: ArchiveRecord) -> None:
    """Put the archived documents of ``record.label`` back and mark the archival ``restored`` (resumable)."""
    if record.state not in (WRITTEN, REMOVING, ARCHIVED, RESTORING):
        await drop_archive(stores.engine, record.label)  # files never completed: no document was removed
        return
    await set_archive(stores.engine, record.label, state=RESTORING, done=0, error="", updated_at=utc_now())
    manifest = await read_manifest(record.folder)
    entries = dict(manifest.get("databases") or {})
    for entry in entries.values():
        await check_file(record.folder, entry)
    by_name = {db.name: db for db in stores.dbs}
    if missing := sorted(set(entries) - set(by_name)):
        raise ArchiveError(f"the archive holds databases this monitor does not follow: {', '.join(missing)}")
    done = 0
    for name, entry in sorted(entries.items()):
        async for docs in members_of(record.folder, str(entry["name"])):
            await _restore_member(by_name[name], docs)
            done += len(docs)
            await set_archive(stores.engine, record.label, done=done, updated_at=utc_now())
    await finish_restore(stores.engine, record.label, utc_now())
