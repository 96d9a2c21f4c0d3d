"""A cycle's software environment as variables: what its Snakemake runs get, and what ``prodflow cycle shell``
sets on a host that shares the cycle's file system (legend-prodenv's ``setup.sh`` and ``dataprod-load-sw``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CLEARED = ("PYTHONPATH", "PYTHONHOME")
"""Unset in the environment: they would put other Python packages before the cycle's."""


def venv_variables(env_dir: Path) -> dict[str, str]:
    """What makes ``env_dir`` the active Python environment (besides its ``bin`` first on PATH)."""
    return {"VIRTUAL_ENV": str(env_dir), "PYTHONNOUSERSITE": "1"}


def prodenv_variables(root: Path, cycle_dir: Path, cycle: str) -> dict[str, str]:
    """legend-prodenv's variables: ``PRODENV`` (the production root holding the cycles), ``PRODCYCLE`` (the cycle
    folder, as legend-dataflow names it) and ``PYTHONDONTWRITEBYTECODE`` (the environment may be shared by many
    cycles: a shell does not write into it); ``PRODFLOW_CYCLE`` names the cycle (for a prompt)."""
    return {
        "PRODENV": str(root),
        "PRODCYCLE": str(cycle_dir),
        "PRODFLOW_CYCLE": cycle,
        "PYTHONDONTWRITEBYTECODE": "1",
    }


@dataclass(frozen=True)
class ShellEnvironment:
    """The changes that turn a login environment into the cycle's: set, put first on PATH, unset."""

    variables: dict[str, str]
    path_prepend: list[str]
    unset: list[str]


def shell_environment(
    *, root: Path, cycle_dir: Path, cycle: str, env_dir: Path, extra: dict[str, str] | None = None
) -> ShellEnvironment:
    """A Snakemake run's environment (``extra`` = the operator's ``run_env``) plus legend-prodenv's variables."""
    variables = {**(extra or {}), **prodenv_variables(root, cycle_dir, cycle), **venv_variables(env_dir)}
    return ShellEnvironment(variables=variables, path_prepend=[str(env_dir / "bin")], unset=list(CLEARED))
