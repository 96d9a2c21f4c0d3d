"""``/api/grab``: the grabber's manifest of a label's output files, and the label's .exactly."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from prodflow_core.identity import Reader
from prodflow_core.jobdocs import COMPLETED

from prodflow_monitor.archive.reads import archived_exactly_lines, archived_files, serving_archive
from prodflow_monitor.deps import CountsDep, FollowedJobDocs, JobDatabases, require_label
from prodflow_monitor.grabber import Selection, build_manifest, exactly_lines, manifest_of, render_exactly

router = APIRouter(prefix="/api/grab", tags=["grab"])

PassQuery = Annotated[int | None, Query(alias="pass")]


@router.get("/{label}", summary="Manifest of a label's output files (URL, size, adler32)")
async def get_manifest(
    label: str,
    identity: Reader,
    dbs: FollowedJobDocs,
    counts: CountsDep,
    module: str | None = None,
    run: int | None = None,
    pass_number: PassQuery = None,
    status: str | None = COMPLETED,
) -> dict[str, Any]:
    """Files of the selected jobs (``status`` defaults to ``completed``; empty ``status=`` means any).

    For an archived label the files come from the archive's index, and ``archived`` is true.
    """
    experiment = await require_label(counts, label, identity)
    selection = Selection(module=module, run=run, pass_number=pass_number, status=status or None)
    if await serving_archive(counts, label) is not None:
        files = await archived_files(counts, label, selection)
        return {**manifest_of(label, selection, experiment, files), "archived": True}
    return await build_manifest(counts, dbs, label, selection, experiment)


@router.get(
    "/{label}/exactly",
    summary="The label's jobs as an .exactly file",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}},
)
async def get_exactly(
    label: str,
    identity: Reader,
    dbs: JobDatabases,
    counts: CountsDep,
    module: str | None = None,
    run: int | None = None,
    pass_number: PassQuery = None,
    status: str | None = None,
) -> PlainTextResponse:
    """``module run pass`` per line, sorted, newline-terminated, no header (an archived label's from its archive)."""
    await require_label(counts, label, identity)
    selection = Selection(module=module, run=run, pass_number=pass_number, status=status or None)
    if await serving_archive(counts, label) is not None:
        lines = await archived_exactly_lines(counts, label, selection)
    else:
        lines = await exactly_lines(counts, [db.name for db in dbs], label, selection)
    body = render_exactly(lines)
    return PlainTextResponse(
        body, headers={"Content-Disposition": f'attachment; filename="{label}.exactly"'}, media_type="text/plain"
    )
