"""SQL tables of cycle-runner: cycles, their runs (Snakemake runs and software installs share one queue), and the
provenance records of the files the runs made (one row per file, one per Snakemake job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

RUN_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})
KINDS = ("snakemake", "install")


class CycleRow(SQLModel, table=True):
    """A production cycle: its folder, checkouts and software."""

    __tablename__ = "cycles"
    __table_args__ = (Index("ix_cycles_experiment_created_at", "experiment", "created_at"),)  # GET /api/cycles

    name: str = Field(primary_key=True)
    experiment: str = Field(index=True)
    setup: str
    path: str
    created_at: datetime
    created_by: str
    checkouts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    software: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    slurm: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Partition and account of the cycle's Slurm runs (``SlurmSettings``); ``None``: Slurm's defaults."""


class RunRow(SQLModel, table=True):
    """One queued, running or finished operation on a cycle: a Snakemake run or a software install."""

    __tablename__ = "cycle_runs"

    id: str = Field(primary_key=True)
    cycle: str = Field(index=True, foreign_key="cycles.name")
    kind: str = Field(index=True)
    state: str = Field(index=True)
    request: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    requested_by: str
    created_at: datetime = Field(index=True)
    waiting_since: datetime | None = None
    """When the run became its cycle's next and asked for cores: its place in line among other cycles' runs."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    pid: int | None = None
    cores_granted: int | None = None
    """Cores of the budget the run holds (a Slurm run holds one: its Snakemake; the jobs run on the cluster)."""
    jobs: int | None = None
    """The ``-j`` given to Snakemake: ``--cores`` of a local run, ``--jobs`` (cluster jobs at once) of a Slurm run."""
    cancel_requested: bool = False
    message: str = ""
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    log_path: str = ""
    events_path: str = ""
    provenance: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """What the run ran with, taken when it started: ``config_sha256`` and the software ``pins``."""


class StepRow(SQLModel, table=True):
    """One finished Snakemake job of a run: its rule, inputs and outputs (with their sizes and adler32 then)."""

    __tablename__ = "cycle_steps"

    run_id: str = Field(primary_key=True)
    jobid: int = Field(primary_key=True)
    cycle: str
    rule: str
    wildcards: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    inputs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    outputs: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """``{"path", "size", "adler32"}`` of each output file when the job finished."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class FileRow(SQLModel, table=True):
    """A file of a cycle as last made (or, with no ``rule``, as first read by a step that no recorded step made).

    ``path`` is relative to the cycle folder (absolute for a file outside it); a file made again by a later run
    replaces its row, so the newest maker wins.
    """

    __tablename__ = "cycle_files"
    __table_args__ = (Index("ix_cycle_files_name_adler32", "name", "adler32"),)  # a downloaded file: name + checksum

    cycle: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    name: str
    size: int | None = None
    adler32: str | None = None
    mtime_ns: int | None = None
    recorded_at: datetime
    run_id: str | None = None
    jobid: int | None = None
    rule: str | None = None
    wildcards: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    inputs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime | None = None
    finished_at: datetime | None = None
