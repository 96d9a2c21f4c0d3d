"""The answer of ``GET /api/provenance``: a file and the whole chain that made it.

Two kinds of output exist. A SNO+ job output (``kind = "job-output"``) traces to the job document and attempt that
wrote it, its campaign and its production request. A LEGEND cycle file (``kind = "cycle-file"``) traces to the
Snakemake step that wrote it and, through that step's inputs, down to the files no step made (raw data, configs);
a cycle's files form a DAG, so they are listed once each with their inputs named by path, asked file first.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT: Final = "prodflow.provenance/1"


class _Record(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class FileRecord(_Record):
    """One file as recorded when it was made."""

    name: str = Field(description="file name (its last path part)")
    url: str | None = Field(None, description="storage element URL (SNO+ outputs)")
    path: str | None = Field(None, description="path under the cycle folder (LEGEND cycle files)")
    size: int | None = None
    adler32: str | None = Field(None, description="8 lowercase hex digits")
    recorded_at: str | None = None


class Attempt(_Record):
    """One try of a job at a backend, from its job document's history."""

    attempt: int
    site: str | None = None
    backend: str | None = Field(None, description="backend name (local, slurm, ...)")
    backend_id: str | None = None
    submitted_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    outcome: str = Field(description="the last status this attempt reached")
    reason: str = ""


class JobProvenance(_Record):
    """The job document that wrote a SNO+ output."""

    id: str
    database: str
    experiment: str
    label: str
    module: str
    run: int
    chunk: int
    pass_number: int = Field(alias="pass")
    seed: int | None = None
    events: int | None = None
    status: str
    parent: str | None = None
    attempts: list[Attempt]
    command: str | None = Field(None, description="the command the backend ran, as resolved at submission")
    software: dict[str, Any] = Field(description="rat_v, ratdb_tag, template parameters, software name/version")


class CampaignProvenance(_Record):
    """The campaign (a submitted jobs.json) that created the job."""

    id: str
    site: str
    pass_number: int = Field(alias="pass")
    kind: str
    parent_campaign: str | None = None
    created_by: str
    created_at: str


class RequestStateChange(_Record):
    """One state change of a production request: who, when, why."""

    state: str
    at: str
    by: str
    note: str = ""


class RequestProvenance(_Record):
    """The production request the campaign carried out."""

    id: str
    title: str
    requester: str
    state: str
    approved_by: str | None = None
    approved_at: str | None = None
    jobs_json_sha256: str | None = None
    history: list[RequestStateChange]


class JobOutputProvenance(_Record):
    """A SNO+ output: the job and attempt that wrote it, its campaign and request."""

    attempt: int = Field(description="the attempt that wrote the file")
    job: JobProvenance
    campaign: CampaignProvenance | None = Field(None, description="null for a job filed without a campaign")
    request: RequestProvenance | None = Field(None, description="null for a jobs.json uploaded without a request")


class SoftwarePin(_Record):
    """One pinned piece of a cycle's software: a git checkout or a resolved package version."""

    name: str
    kind: Literal["git", "package"]
    version: str | None = None
    commit: str | None = None
    source: str | None = Field(None, description="repository URL or package spec")


class CycleProvenance(_Record):
    """The cycle a LEGEND file belongs to."""

    name: str
    experiment: str
    config_sha256: str
    pins: list[SoftwarePin]


class SnakemakeStep(_Record):
    """The Snakemake job that wrote a file."""

    run_id: str = Field(description="the cycle-runner run (one Snakemake invocation)")
    rule: str
    jobid: int | None = None
    wildcards: dict[str, str] = Field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None


class CycleFileNode(_Record):
    """One file of the chain, with the step that made it (null: nothing recorded made it) and its inputs."""

    file: FileRecord
    made_by: SnakemakeStep | None = None
    inputs: list[str] = Field(default_factory=list, description="paths of the step's inputs, each a node too")


class CycleFileProvenance(_Record):
    """A LEGEND cycle file: its cycle and every file of its chain (the asked file first)."""

    cycle: CycleProvenance
    files: list[CycleFileNode]


class Provenance(_Record):
    """Where one output file came from, as ``GET /api/provenance`` answers."""

    format: Literal["prodflow.provenance/1"] = FORMAT
    kind: Literal["job-output", "cycle-file"]
    experiment: str
    file: FileRecord
    job_output: JobOutputProvenance | None = None
    cycle_file: CycleFileProvenance | None = None
