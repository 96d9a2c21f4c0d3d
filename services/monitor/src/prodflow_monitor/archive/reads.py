"""What an archived label still answers, read from its archive and the SQL index of its jobs.

A job by id or a page of a listing reads the index rows of those jobs and decompresses only the gzip members
that hold them; .exactly, the grab manifest and the verification of the kept counts read the label's index rows
(their answers are as big as the label anyway) and never the archive files.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from prodflow_core.jobdocs import parse_job_id
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_monitor.archive.files import jobs_file_name, read_member
from prodflow_monitor.archive.tables import (
    ARCHIVED,
    REMOVING,
    RESTORING,
    ArchivedRow,
    ArchiveRecord,
    archival_starts,
    index_page,
    index_rows,
    load_archive,
)
from prodflow_monitor.grabber import Selection, manifest_entry

SERVED_FROM_ARCHIVE = frozenset({REMOVING, ARCHIVED, RESTORING})
"""States in which the label's reads come from the archive (its documents may be partly or wholly gone)."""
_PAGE = 5000


async def serving_archive(engine: AsyncEngine, label: str) -> ArchiveRecord | None:
    """The archival of ``label`` if its reads come from the archive now, else ``None``."""
    record = await load_archive(engine, label)
    return record if record is not None and record.state in SERVED_FROM_ARCHIVE else None


async def _docs_of(folder: str, database: str, rows: Sequence[ArchivedRow]) -> dict[str, dict[str, Any]]:
    """The archived documents of ``rows`` (one member read per member that holds any of them)."""
    wanted = {row.doc_id for row in rows}
    out: dict[str, dict[str, Any]] = {}
    for member in sorted({row.member for row in rows}, key=lambda m: m.offset):
        for doc in await read_member(folder, jobs_file_name(database), member, wanted):
            if doc.get("_id") in wanted:
                out[str(doc["_id"])] = {**doc, "archived": True}
    return out


async def archived_docs(engine: AsyncEngine, database: str, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The archived job documents among ``doc_ids`` of ``database`` (marked ``"archived": true``), by id."""
    rows = await index_rows(engine, database, doc_ids)
    by_label: dict[str, list[ArchivedRow]] = defaultdict(list)
    for row in rows.values():
        by_label[parse_job_id(row.doc_id)[0]].append(row)
    out: dict[str, dict[str, Any]] = {}
    for label, chosen in by_label.items():
        record = await load_archive(engine, label)
        if record is not None:
            out.update(await _docs_of(record.folder, database, chosen))
    return out


async def archived_job(engine: AsyncEngine, databases: Sequence[str], job_id: str) -> dict[str, Any] | None:
    """One archived job document with its ``database``, or ``None``."""
    for database in databases:
        found = await archived_docs(engine, database, [job_id])
        if job_id in found:
            return {**found[job_id], "database": database}
    return None


async def _selected_rows(engine: AsyncEngine, label: str, selection: Selection) -> list[ArchivedRow]:
    out: list[ArchivedRow] = []
    after: tuple[str, str] | None = None
    while rows := await index_page(engine, label, after, _PAGE):
        after = (rows[-1].database, rows[-1].doc_id)
        out += [row for row in rows if selection.matches([label, row.module, row.run, row.pass_number], row.status)]
    return out


async def archived_exactly_lines(engine: AsyncEngine, label: str, selection: Selection) -> list[str]:
    """The .exactly lines of the selected archived jobs (as :func:`~prodflow_monitor.grabber.exactly_lines`)."""
    entries = {(row.module, row.run, row.pass_number) for row in await _selected_rows(engine, label, selection)}
    return [f"{module} {run} {pass_number}" for module, run, pass_number in sorted(entries)]


async def archived_files(engine: AsyncEngine, label: str, selection: Selection) -> list[dict[str, Any]]:
    """The manifest entries of the selected archived jobs' outputs (as the grabber lists them)."""
    files = [
        manifest_entry(row.database, row.doc_id, output)
        for row in await _selected_rows(engine, label, selection)
        for output in row.outputs
    ]
    files.sort(key=lambda entry: (entry["path"], entry["url"]))
    return files


async def without_restored(engine: AsyncEngine, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``docs`` without those a restore put back as they were: documents of a label archived since they were last
    updated. Their states were announced when they were reached; the feed brings them again only because they
    came back."""
    if not docs:
        return docs
    since = await archival_starts(engine, {str(doc.get("label")) for doc in docs})
    return [doc for doc in docs if str(doc.get("updated_at") or "") > since.get(str(doc.get("label")), "")]
