"""The workflow profile Snakemake reads for a cycle run, and the default resources it sets.

A dataflow keeps its per-rule resources (``set-resources``: runtime, mem_mb, cpus_per_task) and defaults
(``default-resources``) in a workflow profile, ``profiles/default/`` beside its Snakefile, which Snakemake uses
without being told. The runner reads only the profile's ``default-resources``: a ``--default-resources`` on the
command line (the cycle's Slurm partition and account) replaces the profile's whole list, so the runner passes
them merged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from prodflow_cycle_runner.confinement import UnsafeInput, inside

SNAKEMAKE_MAJOR = 9
"""Profiles named ``profile.v<N>+.yaml`` apply from Snakemake ``N`` on; the cycles' environments hold Snakemake 9."""
_PROFILE_FILE = re.compile(r"(?P<name>profile|config)(?:\.v(?P<min_major>\d+)\+)?\.yaml")


def workflow_profile(cycle_dir: Path, snakefile: str = "workflow/Snakefile") -> Path | None:
    """The profile file Snakemake picks when run from ``cycle_dir`` without ``--workflow-profile``, if any.

    Snakemake takes the first folder that exists of ``default``, ``profiles/default`` (from the working folder)
    and ``profiles/default`` beside the Snakefile; in it, the ``profile``/``config`` YAML file for the newest
    Snakemake version that applies.
    """
    snakefile_dir = str(Path(snakefile).parent)
    for relative in ("default", "profiles/default", f"{snakefile_dir}/profiles/default"):
        try:
            folder = inside(cycle_dir, relative)
        except UnsafeInput:  # a link out of the cycle: Snakemake would read it, the service does not
            return None
        if folder.exists():
            return _profile_file(folder) if folder.is_dir() else folder
    return None


def _profile_file(folder: Path) -> Path | None:
    versions: dict[Path, int] = {}
    for path in folder.iterdir():
        match = _PROFILE_FILE.fullmatch(path.name)
        if match and path.is_file():
            min_major = int(match["min_major"] or 0)
            if min_major <= SNAKEMAKE_MAJOR:
                versions[path] = min_major
    return max(sorted(versions), key=versions.__getitem__) if versions else None


def profile_default_resources(cycle_dir: Path) -> dict[str, str]:
    """``default-resources`` of the cycle's workflow profile as ``name → value`` (empty without a profile).

    Both of Snakemake's forms are read: a mapping (``mem_mb: 1000``) and a list (``- mem_mb=1000``).
    """
    path = workflow_profile(cycle_dir)
    if path is None:
        return {}
    try:
        profile = yaml.safe_load(inside(cycle_dir, str(path.relative_to(cycle_dir.resolve()))).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}  # Snakemake reports a broken profile itself
    entries = profile.get("default-resources") if isinstance(profile, dict) else None
    if isinstance(entries, dict):
        return {str(name): _value(value) for name, value in entries.items() if value is not None}
    if isinstance(entries, list):
        pairs = [str(entry).partition("=") for entry in entries]
        return {name: value for name, sep, value in pairs if sep}
    return {}


def _value(value: Any) -> str:
    """A profile value as Snakemake turns it into a command-line word: text that reads as a number stays text."""
    if isinstance(value, str):
        for number in (int, float):
            try:
                number(value)
            except ValueError:
                continue
            return repr(value)
    return str(value)
