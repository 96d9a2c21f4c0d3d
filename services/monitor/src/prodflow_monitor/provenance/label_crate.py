"""A SNO+ label as a Process Run RO-Crate: one ``CreateAction`` per attempt of each job (instrument: the RAT
version it ran), its outputs with size and adler32, its parameters, the people who asked, approved and submitted.

Built from the output records of the label (in URL order, in pages), the job documents (bulk reads, the archive
for an archived label), and each distinct campaign and request asked once of submitter and request-api.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prodflow_core.couch import CouchDatabase
from prodflow_core.identity import Identity
from prodflow_core.provenance import Attempt, CampaignProvenance, RequestProvenance
from prodflow_core.provenance.attempts import attempts_of
from prodflow_core.provenance.crate import CrateAction, CrateAgent, CrateFile, CrateRecord, CrateSoftware, crate_zip
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_monitor.archive.reads import archived_job
from prodflow_monitor.provenance.chain import campaign_of, request_of
from prodflow_monitor.provenance.peers import Peers
from prodflow_monitor.provenance.records import OutputRecord, OutputRecords

Doc = dict[str, Any]
_DOCS_PER_READ = 1000


async def label_records(records: OutputRecords, experiment: str, label: str) -> list[OutputRecord]:
    """Every output record of ``label``, page by page."""
    found: list[OutputRecord] = []
    while page := await records.of_label(experiment, label, after=found[-1].url if found else ""):
        found += page
    return found


async def job_documents(dbs: Sequence[CouchDatabase], counts: AsyncEngine, wanted: Mapping[str, str]) -> dict[str, Doc]:
    """The documents of the jobs ``wanted`` (id → database), read in bulk; an archived one from its archive."""
    docs: dict[str, Doc] = {}
    by_database: dict[str, list[str]] = defaultdict(list)
    for job_id, database in wanted.items():
        by_database[database].append(job_id)
    for db in dbs:
        ids = by_database.get(db.name, [])
        for start in range(0, len(ids), _DOCS_PER_READ):
            docs.update(await db.get_many(ids[start : start + _DOCS_PER_READ]))
    names = [db.name for db in dbs]
    for job_id in wanted.keys() - docs.keys():
        if (found := await archived_job(counts, names, job_id)) is not None:
            docs[job_id] = found
    return docs


async def label_crate(
    label: str,
    experiment: str,
    *,
    records: OutputRecords,
    dbs: Sequence[CouchDatabase],
    counts: AsyncEngine,
    peers: Peers,
    identity: Identity,
) -> bytes | None:
    """The zip of the label's crate, or ``None`` when no output of the label is recorded."""
    outputs = await label_records(records, experiment, label)
    if not outputs:
        return None
    docs = await job_documents(dbs, counts, {r.job_id: r.database for r in outputs})
    campaign_ids = sorted({str(d["campaign_id"]) for d in docs.values() if d.get("campaign_id")})
    request_ids = sorted({str(d["request_id"]) for d in docs.values() if d.get("request_id")})
    campaigns = await asyncio.gather(*(peers.campaign(identity, i) for i in campaign_ids))
    requests = await asyncio.gather(*(peers.request(identity, i) for i in request_ids))
    record = crate_record(
        label,
        outputs,
        docs,
        {i: campaign_of(c) for i, c in zip(campaign_ids, campaigns, strict=True) if c},
        [request_of(r) for r in requests if r],
    )
    return await asyncio.to_thread(crate_zip, record)


def crate_record(
    label: str,
    outputs: Sequence[OutputRecord],
    docs: Mapping[str, Doc],
    campaigns: Mapping[str, CampaignProvenance],
    requests: Sequence[RequestProvenance],
) -> CrateRecord:
    """The crate of a label as plain data (pure: the tests build it without servers)."""
    by_job: dict[str, list[OutputRecord]] = defaultdict(list)
    for output in outputs:
        by_job[output.job_id].append(output)
    software = {_software_id(d): _software(d) for d in docs.values()}
    people = _people(campaigns.values(), requests)
    actions = [
        action
        for job_id in sorted(docs)
        for action in _job_actions(
            docs[job_id], by_job.get(job_id, []), campaigns.get(str(docs[job_id].get("campaign_id")))
        )
    ]
    asked = "; ".join(f"request {r.id} by {r.requester}, approved by {r.approved_by or 'nobody yet'}" for r in requests)
    return CrateRecord(
        name=f"SNO+ production label {label}",
        description=f"The jobs of label {label} and the files they wrote" + (f" ({asked})" if asked else ""),
        actions=actions,
        files=[CrateFile(o.url, o.basename, size=o.size, adler32=o.adler32, path=o.name) for o in outputs],
        software=list(software.values()),
        agents=[CrateAgent(_person(name), name) for name in sorted(people)],
    )


def _job_actions(
    doc: Mapping[str, Any], outputs: Sequence[OutputRecord], campaign: CampaignProvenance | None
) -> list[CrateAction]:
    wrote: dict[int, list[str]] = defaultdict(list)
    for output in outputs:
        wrote[output.attempt].append(output.url)
    parameters = {
        key: str(value)
        for key, value in {"module": doc.get("module"), "run": doc.get("run"), "chunk": doc.get("chunk"),
                           "pass": doc.get("pass"), "events": doc.get("events"), "seed": doc.get("seed"),
                           "ratdb_tag": doc.get("ratdb_tag"), "command": doc.get("command"),
                           **{f"template.{k}": v for k, v in (doc.get("template") or {}).items()}}.items()
        if value is not None
    }  # fmt: skip
    return [
        _attempt_action(doc, attempt, wrote.get(attempt.attempt, []), parameters, campaign)
        for attempt in attempts_of(doc)
    ]


def _attempt_action(
    doc: Mapping[str, Any],
    attempt: Attempt,
    outputs: list[str],
    parameters: dict[str, str],
    campaign: CampaignProvenance | None,
) -> CrateAction:
    done = bool(outputs) or attempt.outcome == "completed"
    return CrateAction(
        id=f"#{doc['_id']}/attempt-{attempt.attempt}",
        name=f"{doc.get('module')} run {doc.get('run')} chunk {doc.get('chunk')} pass {doc.get('pass')}, "
        f"attempt {attempt.attempt}",
        instrument=_software_id(doc),
        agent=_person(campaign.created_by) if campaign and campaign.created_by else None,
        started_at=attempt.started_at or attempt.submitted_at,
        ended_at=attempt.finished_at,
        outputs=outputs,
        parameters=parameters,
        status="completed" if done else ("failed" if attempt.finished_at else "active"),
        description=f"job {doc['_id']} at site {attempt.site}, backend id {attempt.backend_id}, "
        f"exit code {attempt.exit_code}",
        error=attempt.reason or None,
    )


def _software_id(doc: Mapping[str, Any]) -> str:
    return f"#software-rat-{doc.get('rat_v') or 'unknown'}"


def _software(doc: Mapping[str, Any]) -> CrateSoftware:
    return CrateSoftware(_software_id(doc), "RAT (SNO+ reactor analysis tool)", version=doc.get("rat_v") or None)


def _person(name: str) -> str:
    return f"#person-{name}"


def _people(campaigns: Iterable[CampaignProvenance], requests: Iterable[RequestProvenance]) -> set[str]:
    names = {c.created_by for c in campaigns if c.created_by}
    for request in requests:
        names.add(request.requester)
        names.update(change.by for change in request.history)
    return {name for name in names if name}
