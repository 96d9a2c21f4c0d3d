"""Request bodies and responses of cycle-runner's API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from prodflow_core.strict import StrictBool, StrictInt, StrictModel
from pydantic import BaseModel, Field


class RepositoryRef(StrictModel):
    """A git repository at a ref (branch, tag or commit)."""

    url: str = Field(description="file://, https://, ssh:// or user@host:path")
    ref: str = Field("main", description="branch, tag or commit")


class SoftwareRepository(RepositoryRef):
    """A package checked out into ``software/python/src/<name>`` and installed from there (prodenv's ``-c``)."""

    name: str


class ExecEnv(StrictModel):
    """The container prefix every command of the cycle runs under (``cmd arg <command>``)."""

    cmd: str = ""
    arg: str = ""


SLURM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SlurmSettings(StrictModel):
    """Where the cycle's Slurm jobs go; unset, Slurm's default partition and no account (``--slurm-no-account``)."""

    partition: str | None = Field(None, pattern=SLURM_NAME, description="sbatch -p", examples=["debug"])
    account: str | None = Field(None, pattern=SLURM_NAME, description="sbatch -A", examples=["legend"])


class CycleCreate(StrictModel):
    """``POST /api/cycles``."""

    name: str = Field(description="folder name under the production root", examples=["ref-v2.0.0"])
    experiment: str = "legend"
    setup: str = "l200"
    dataflow: RepositoryRef
    metadata: RepositoryRef
    software: list[SoftwareRepository] = Field(default_factory=list, max_length=20)
    pkg_versions: dict[str, str] | None = Field(None, description="pinned packages; default: the service's pins")
    execenv: ExecEnv = Field(default_factory=ExecEnv)
    slurm: SlurmSettings | None = Field(None, description="partition and account of runs with the Slurm executor")


class SoftwareInstall(StrictModel):
    """``POST /api/cycles/{name}/software``."""

    reinstall: StrictBool = Field(False, description="rebuild the environment from scratch (prodenv's -r)")


class RunCreate(StrictModel):
    """``POST /api/cycles/{name}/runs``."""

    targets: list[str] = Field(min_length=1, max_length=500, examples=[["all-l200-p03-r001-phy-dsp.gen"]])
    cores: StrictInt = Field(
        1,
        ge=1,
        le=4096,
        description="Snakemake -j: local cores (at most CYCLE_RUNNER_MAX_CORES; the run may be granted fewer, "
        "see cores_granted) or, on Slurm, cluster jobs at once",
    )
    executor: Literal["local", "slurm"] = "local"
    options: list[str] = Field(default_factory=list, max_length=50, examples=[["keep-going", "latency-wait=30"]])


class InvalidationCreate(StrictModel):
    """``POST /api/cycles/{name}/invalidate``: a target pattern or a tier with a key selection."""

    target: str | None = Field(None, description="a .gen target, e.g. all-l200-p03-r001-phy-dsp.gen")
    tier: str | None = None
    experiment: str | None = None
    period: str | None = None
    run: str | None = None
    datatype: str | None = None
    timestamp: str | None = None
    dry_run: StrictBool = Field(True, description="only show what would be removed")
    trash: StrictBool = Field(True, description="move files to generated/tmp/trash/<id> instead of deleting them")


class CycleOut(BaseModel):
    """A cycle as the API shows it."""

    name: str
    experiment: str
    setup: str
    path: str
    state: str
    created_at: datetime
    created_by: str
    checkouts: dict[str, Any]
    software: dict[str, Any]
    slurm: SlurmSettings | None = None
    active_run: str | None = None
    queued_runs: int = 0
    links: dict[str, str]


class RunOut(BaseModel):
    """A run or install as the API shows it."""

    id: str
    cycle: str
    kind: str
    state: str
    request: dict[str, Any]
    requested_by: str
    created_at: datetime
    waiting_since: datetime | None = Field(None, description="when it asked for cores (its place in line)")
    started_at: datetime | None
    finished_at: datetime | None
    cores_granted: int | None = Field(None, description="cores of the budget it holds (Slurm runs: 1)")
    jobs: int | None = Field(None, description="the -j given to Snakemake (--cores local, --jobs on Slurm)")
    exit_code: int | None
    message: str
    progress: dict[str, Any]
    links: dict[str, str]


class InvalidationOut(BaseModel):
    """What an invalidation removes (dry run) or removed."""

    id: str
    dry_run: bool
    tiers: list[str]
    selection: dict[str, str]
    count: int
    bytes: int
    files: list[dict[str, Any]]
    trash: str | None


class EnvironmentOut(BaseModel):
    """``GET /api/cycles/{name}/environment``: the cycle's software environment as variables, for a shell on a host
    that shares the cycle's file system (``prodflow cycle shell`` / ``prodflow cycle env``)."""

    cycle: str
    setup: str
    path: str = Field(description="the cycle folder (where runs start)")
    env_path: str = Field(description="the Python environment the cycle's runs use")
    variables: dict[str, str] = Field(
        description="variables to set: PRODENV, PRODCYCLE, PRODFLOW_CYCLE, VIRTUAL_ENV, ... and the operator's run_env"
    )
    path_prepend: list[str] = Field(description="folders to put first on PATH, in this order")
    unset: list[str] = Field(description="variables to remove")
    execenv: list[str] = Field(description="the container prefix of every command of the cycle, as words (may be [])")
    packages: dict[str, str] = Field(default_factory=dict, description="resolved version of every package")
