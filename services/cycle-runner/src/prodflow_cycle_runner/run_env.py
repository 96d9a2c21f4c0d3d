"""Where a Snakemake run executes: its environment, and what a run killed without cleanup leaves behind."""

from __future__ import annotations

import os
from pathlib import Path

from prodflow_core.credentials import without_service_secrets

from prodflow_cycle_runner.environment import CLEARED, venv_variables
from prodflow_cycle_runner.processes import command_line


def run_environment(env_dir: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Snakemake run: the cycle's venv first on PATH, nothing from the service's venv.

    Without ``env_dir``, the environment of the Slurm commands the service runs for a run (``squeue``, ``scancel``).
    """
    environ = without_service_secrets(os.environ)  # the workflow runs code of the cycle's repositories
    for name in ("VIRTUAL_ENV", *CLEARED):
        environ.pop(name, None)
    environ.update(extra or {})
    if env_dir is None:
        environ["PYTHONNOUSERSITE"] = "1"
        return environ
    environ["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
    environ.update(venv_variables(env_dir))
    return environ


def snakemake_locked(cycle_dir: Path) -> bool:
    """True if Snakemake's lock is in the cycle (a run killed without cleanup leaves it behind)."""
    locks = cycle_dir / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def still_ours(pid: int, events_path: str, log_path: str) -> bool:
    """True if process ``pid`` is still a run's Snakemake (its events or log file on the command line), not a
    recycled pid."""
    words = command_line(pid)
    return any("snakemake" in w for w in words) and any(w in (events_path, log_path) for w in words)
