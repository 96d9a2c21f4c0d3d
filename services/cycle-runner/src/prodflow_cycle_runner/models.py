"""SQL tables of cycle-runner: cycles and their runs (Snakemake runs and software installs share one queue)."""

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
