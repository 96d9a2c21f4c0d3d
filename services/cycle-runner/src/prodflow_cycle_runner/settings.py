"""Settings of cycle-runner (env prefix ``CYCLE_RUNNER_``; shared ones ``PRODFLOW_``)."""

from __future__ import annotations

import os
from pathlib import Path

from prodflow_core.settings import ServiceSettings
from pydantic import Field
from pydantic_settings import SettingsConfigDict

DEFAULT_PORT = 8004
DEFAULT_PKG_VERSIONS = {
    "pygama": "pygama==2.6.2",
    "dspeed": "dspeed==2.4.3",
    "legend-pydataobj": "legend-pydataobj==2.0.3",
    "legend-lh5io": "legend-lh5io==0.3.0",
}


def available_cores() -> int:
    """The CPUs this process may run on (its affinity, which containers' cpusets narrow), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class CycleRunnerSettings(ServiceSettings):
    """Settings of cycle-runner."""

    model_config = SettingsConfigDict(env_prefix="CYCLE_RUNNER_", extra="ignore", populate_by_name=True)

    port: int = DEFAULT_PORT
    database_url: str | None = None
    production_root: Path | None = None
    """Where cycles live (default ``<data_dir>/cycles``); nothing a request names may leave it."""
    env_store: Path | None = None
    """Shared environments keyed by the hash of their pins (default ``<production_root>/.envs``)."""
    uv: str = "uv"
    git: str = "git"
    python: str = "3.11"
    snakemake_requirement: str = "snakemake>=9,<10"
    slurm_plugin_requirement: str = "snakemake-executor-plugin-slurm>=1.0"
    default_pkg_versions: dict[str, str] = DEFAULT_PKG_VERSIONS
    git_protocols: str = "file:git:http:https:ssh"
    run_env: dict[str, str] = {}
    """Extra environment of every Snakemake run (``{"SLURM_CONF": "/etc/slurm/slurm.conf"}``); operator-set."""
    progress_interval_s: float = 2.0
    cancel_grace_s: float = 10.0
    max_cores: int = Field(default_factory=available_cores, ge=1)
    """The core budget shared by the local Snakemake runs of all cycles (default: the CPUs this process may use)."""
    reserved_cores: int | None = Field(None, ge=0)
    """Cores no single run may take, kept for other cycles' runs (default: a quarter of ``max_cores``, at least one)."""
    repositories: list[str] = []
    """URL prefixes of the repositories non-admins may build cycles from (``allow_list``); admins may use any."""
    pinnable_packages: list[str] | None = None
    """Packages non-admins may pin in ``pkg_versions`` (default: those of ``default_pkg_versions``)."""

    def core_reserve(self) -> int:
        """The reserved cores, at most ``max_cores - 1`` (a run always gets one)."""
        reserved = self.reserved_cores if self.reserved_cores is not None else max(1, self.max_cores // 4)
        return min(reserved, self.max_cores - 1)

    def pinnable(self) -> list[str]:
        """The packages non-admins may pin."""
        return self.pinnable_packages if self.pinnable_packages is not None else list(self.default_pkg_versions)

    def sql_url(self) -> str:
        """The SQL database: ``CYCLE_RUNNER_DATABASE_URL`` or an SQLite file under the data folder."""
        return self.database_url or self.sqlite_url("cycle-runner")

    def root(self) -> Path:
        """The production root, resolved."""
        return (self.production_root or self.data_dir / "cycles").resolve()

    def envs(self) -> Path:
        """The shared environment store, resolved."""
        return (self.env_store or self.root() / ".envs").resolve()
