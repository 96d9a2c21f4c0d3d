"""``GET /api/labels/{label}/ro-crate``: a label's jobs and outputs as a Process Run RO-Crate."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prodflow_core.identity import Reader
from prodflow_core.problems import Problem

from prodflow_monitor.deps import CountsDep, JobDatabases, PeersDep, RecordsDep, require_label
from prodflow_monitor.provenance.label_crate import label_crate

router = APIRouter(prefix="/api/labels", tags=["provenance"])


@router.get(
    "/{label}/ro-crate",
    summary="The label as a Process Run RO-Crate (zip): each job attempt, its outputs, parameters and software",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "the RO-Crate as a zip"}},
)
async def get_label_crate(
    label: str, identity: Reader, dbs: JobDatabases, counts: CountsDep, records: RecordsDep, peers: PeersDep
) -> Response:
    """The crate's ``ro-crate-metadata.json`` in a zip; the output files are referenced by their storage element
    URL with size and adler32, not copied."""
    experiment = await require_label(counts, label, identity)
    made = await label_crate(
        label, experiment or "", records=records, dbs=dbs, counts=counts, peers=peers, identity=identity
    )
    if made is None:
        raise Problem(404, "Not Found", f"no output of label {label!r} is recorded", kind="not-found")
    disposition = f'attachment; filename="{label}.crate.zip"'
    return Response(made, media_type="application/zip", headers={"Content-Disposition": disposition})
