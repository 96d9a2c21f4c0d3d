"""``/api/provenance``: from an output file back to its whole chain, in one call."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Query
from prodflow_core.identity import Identity, Reader
from prodflow_core.jobdocs import JOB_DATABASES
from prodflow_core.problems import FieldError, Problem
from prodflow_core.provenance import Provenance

from prodflow_monitor.archive.reads import archived_job
from prodflow_monitor.deps import CountsDep, JobDatabases, PeersDep, RecordsDep, experiments_of
from prodflow_monitor.provenance.chain import job_output_chain
from prodflow_monitor.provenance.records import OutputRecord

router = APIRouter(prefix="/api/provenance", tags=["provenance"])

ADLER32 = r"^[0-9A-Fa-f]{8}$"


def _one_of(**given: object) -> str:
    chosen = [name for name, value in given.items() if value]
    if len(chosen) != 1:
        message = "give exactly one of url, job, path (with cycle, optionally) or name with adler32"
        raise Problem(
            422, "Validation Error", message, kind="validation",
            errors=[FieldError(field=f"query.{name}", message=message, type="one_of") for name in chosen or ["url"]],
        )  # fmt: skip
    return chosen[0]


@router.get(
    "",
    response_model=Provenance,
    response_model_by_alias=True,
    response_model_exclude_none=True,
    summary="Where an output file came from: its job, attempts, campaign and request, or its cycle's chain",
)
async def get_provenance(
    identity: Reader,
    dbs: JobDatabases,
    counts: CountsDep,
    records: RecordsDep,
    peers: PeersDep,
    url: Annotated[str | None, Query(max_length=2000, description="storage element URL of the file")] = None,
    job: Annotated[str | None, Query(max_length=400, description="job id: the chain of its outputs")] = None,
    path: Annotated[str | None, Query(max_length=2000, description="path of a file in a cycle")] = None,
    cycle: Annotated[str | None, Query(max_length=200, description="the cycle of a relative path")] = None,
    name: Annotated[str | None, Query(max_length=500, description="file name of a downloaded file")] = None,
    adler32: Annotated[str | None, Query(pattern=ADLER32, description="its adler32, 8 hex digits")] = None,
) -> Any:
    """The provenance of one file (``kind`` tells a SNO+ job output from a LEGEND cycle file).

    Ask by ``url`` (the storage element URL; a ``file://`` URL of a cycle file works too), ``job`` (the outputs of
    that job), ``path`` (a file in a cycle: absolute, or relative with ``cycle``), or ``name`` and ``adler32``
    (a file someone downloaded). 404 when nothing recorded it.
    """
    if (name is None) != (adler32 is None):
        _one_of(name=name, adler32=adler32, url=url, job=job, path=path)
    chosen = _one_of(url=url, job=job, path=path, name=name and adler32 and name)
    if cycle is not None and chosen != "path":
        _one_of(cycle=cycle, **{chosen: True})
    if url is not None:
        found = await records.by_url(url)
        if found is not None:
            return await _job_output(found, identity, dbs, counts, peers)
        if urlsplit(url).scheme == "file":
            return await _cycle_file(peers, identity, {"path": unquote(urlsplit(url).path)})
        raise Problem(404, "Not Found", f"no output recorded at {url!r}", kind="not-found")
    if job is not None:
        outputs = await records.of_job(None, job)
        if not outputs:
            raise Problem(404, "Not Found", f"no output of job {job!r} is recorded", kind="not-found")
        return await _job_output(outputs[0], identity, dbs, counts, peers)
    if path is not None:
        return await _cycle_file(peers, identity, {"path": path, **({"cycle": cycle} if cycle else {})})
    assert name is not None and adler32 is not None
    visible = experiments_of(identity)
    matches = [r for r in await records.by_file(name, adler32) if visible is None or r.experiment in visible]
    if matches:
        return await _job_output(max(matches, key=lambda r: r.registered_at), identity, dbs, counts, peers)
    return await _cycle_file(peers, identity, {"name": name, "adler32": adler32.lower()})


async def _job_output(
    record: OutputRecord, identity: Identity, dbs: JobDatabases, counts: CountsDep, peers: PeersDep
) -> Provenance:
    identity.require_experiment(record.experiment)
    doc: dict[str, Any] | None = None
    for db in dbs:
        if db.name == record.database:
            doc = await db.get_or_none(record.job_id)
    if doc is None:  # the label was archived: its documents left the database
        doc = await archived_job(counts, [db.name for db in dbs] or list(JOB_DATABASES), record.job_id)
    if doc is None:
        raise Problem(404, "Not Found", f"the job {record.job_id!r} of {record.url!r} is gone", kind="not-found")
    return await job_output_chain(peers, identity, record.file(), record.attempt, doc, record.database)


async def _cycle_file(peers: PeersDep, identity: Identity, params: dict[str, str]) -> Provenance:
    found = await peers.cycle_file(identity, params)
    if found is None:
        what = params.get("path") or f"{params.get('name')} with adler32 {params.get('adler32')}"
        raise Problem(404, "Not Found", f"no output recorded for {what!r}", kind="not-found")
    return Provenance.model_validate(found)
