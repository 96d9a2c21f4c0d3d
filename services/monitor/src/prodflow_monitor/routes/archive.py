"""``/api/labels/{label}/archive`` and ``/restore`` (admin): archiving a finished label, and restoring it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prodflow_core.counts import label_counts
from prodflow_core.events import utc_now
from prodflow_core.identity import Admin
from prodflow_core.jobdocs import FINAL_STATUSES
from prodflow_core.problems import Problem

from prodflow_monitor.archive.files import archive_folder
from prodflow_monitor.archive.operation import archive_label, restore_label
from prodflow_monitor.archive.tables import (
    ARCHIVED,
    ARCHIVING,
    REMOVING,
    RESTORED,
    RESTORING,
    WRITTEN,
    ArchiveRecord,
    load_archive,
    start_archive,
)
from prodflow_monitor.deps import ArchivistDep, CountsDep, require_label
from prodflow_monitor.views import is_label_final

router = APIRouter(prefix="/api/labels", tags=["labels"])


def _conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail, kind="conflict")


async def _require_final(counts: CountsDep, label: str) -> None:
    totals: dict[str, int] = {}
    for row in await label_counts(counts, label):
        totals[row.status] = totals.get(row.status, 0) + row.jobs
    if not is_label_final(totals):
        waiting = {status: n for status, n in sorted(totals.items()) if status not in FINAL_STATUSES}
        raise _conflict(f"label {label!r} has jobs that are not final: {waiting}")


@router.post("/{label}/archive", status_code=202, summary="Archive a finished label (admin)")
async def post_archive(label: str, identity: Admin, counts: CountsDep, archivist: ArchivistDep) -> dict[str, Any]:
    """Start (or resume) moving the label's job documents and events to an archive on its storage element.

    409 while any of its jobs is not final (by the kept counts) or while it is being restored. The work runs in
    the background: ``GET /api/labels/{label}/archive`` shows its state and progress.
    """
    experiment = await require_label(counts, label, identity)
    record = await load_archive(counts, label)
    if record is not None and record.state == RESTORING:
        raise _conflict(f"label {label!r} is being restored (if its restore stopped, ask for the restore again)")
    if record is None or record.state == RESTORED:
        await _require_final(counts, label)
        storage_element = await archivist.storage_element(label)
        if storage_element is None:
            raise _conflict(f"no site of label {label!r} has a storage element for its archive")
        now = utc_now()
        record = ArchiveRecord(
            label, experiment or "", ARCHIVING, archive_folder(storage_element, label), "", 0, 0, "", identity.user,
            now, now,
        )  # fmt: skip
        await start_archive(counts, record)
    elif record.state == ARCHIVED or archivist.busy(record):
        return record.public()
    elif record.state == ARCHIVING:
        await _require_final(counts, label)
    chosen = record
    archivist.start(label, lambda: archive_label(archivist.stores, chosen))
    return (await load_archive(counts, label) or record).public()


@router.post("/{label}/restore", status_code=202, summary="Restore an archived label (admin)")
async def post_restore(label: str, identity: Admin, counts: CountsDep, archivist: ArchivistDep) -> dict[str, Any]:
    """Start (or resume) putting the label's archived documents back; the archival's state ends ``restored``.

    409 if the label is not archived, or its archival is still running.
    """
    await require_label(counts, label, identity)
    record = await load_archive(counts, label)
    if record is None or record.state == RESTORED:
        raise _conflict(f"label {label!r} is not archived")
    if record.state in (ARCHIVING, WRITTEN, REMOVING) and archivist.busy(record):
        raise _conflict(f"label {label!r} is being archived ({record.state})")
    if archivist.busy(record):
        return record.public()  # a restore runs already (here or on another replica)
    archivist.start(label, lambda: restore_label(archivist.stores, record))
    return (await load_archive(counts, label) or record).public()


@router.get("/{label}/archive", summary="State and progress of a label's archival (admin)")
async def get_archive(label: str, identity: Admin, counts: CountsDep) -> dict[str, Any]:
    """The archival record: ``state`` (archiving, written, removing, archived, restoring, restored), progress,
    error; 404 if the label was never archived."""
    await require_label(counts, label, identity)
    record = await load_archive(counts, label)
    if record is None:
        raise Problem(404, "Not Found", f"label {label!r} was never archived", kind="not-found")
    return record.public()
