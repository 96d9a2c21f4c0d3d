"""The Snakemake command line of a run: targets, cores, executor and a whitelist of options.

Options are given by name (``keep-going``) or ``name=value`` (``latency-wait=30``); anything not listed here is
refused, so a request cannot reach options that write outside the cycle, run arbitrary code or change the
workflow (``--snakefile``, ``--directory``, ``--config``, ``--wrapper-prefix``, ...).

Default resources are merged into one ``--default-resources`` (Snakemake keeps only the last one given, and one
given on the command line replaces the profile's whole list): the workflow profile's, then the cycle's, then the
run's ``default-resources=...`` option, a later value of a resource replacing an earlier one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prodflow_cycle_runner.confinement import UnsafeInput

_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
_RESOURCE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}=[A-Za-z0-9_.:+-]{1,100}$")
EXECUTORS = ("local", "slurm")
FLAGS = frozenset(
    {
        "keep-going",
        "rerun-incomplete",
        "dry-run",
        "printshellcmds",
        "forceall",
        "touch",
        "notemp",
        "ignore-incomplete",
        "keep-incomplete",
        "quiet",
        "verbose",
        "show-failed-logs",
        "nolock",
        "slurm-no-account",
        "slurm-requeue",
        "slurm-keep-successful-logs",
    }
)
_TRIGGERS = {"mtime", "params", "input", "software-env", "code"}


def _int(low: int, high: int) -> Callable[[str], list[str]]:
    def check(value: str) -> list[str]:
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return [value]

    return check


def _words(pattern: re.Pattern[str], what: str, allowed: set[str] | None = None) -> Callable[[str], list[str]]:
    def check(value: str) -> list[str]:
        words = [w for w in value.split(",") if w]
        bad = [w for w in words if not pattern.match(w) or (allowed is not None and w not in allowed)]
        if not words or bad:
            raise ValueError(f"{', '.join(bad) or 'nothing'}: not {what}")
        return words

    return check


VALUED: dict[str, Callable[[str], list[str]]] = {
    "latency-wait": _int(0, 3600),
    "restart-times": _int(0, 10),
    "max-jobs-per-second": _int(1, 1000),
    "jobs": _int(1, 100000),
    "forcerun": _words(_RULE, "rule names"),
    "until": _words(_RULE, "rule names"),
    "omit-from": _words(_RULE, "rule names"),
    "allowed-rules": _words(_RULE, "rule names"),
    "rerun-triggers": _words(re.compile(r"^[a-z-]+$"), "rerun triggers", _TRIGGERS),
    "default-resources": _words(_RESOURCE, "name=value resources"),
    "slurm-status-command": _words(re.compile(r"^(sacct|squeue)$"), "sacct or squeue"),
    "slurm-init-seconds-before-status-checks": _int(0, 3600),
    "slurm-status-attempts": _int(1, 100),
    "slurm-qos": _words(_RULE, "a QOS name"),
    "slurm-reservation": _words(_RULE, "a reservation name"),
    "seconds-between-status-checks": _int(1, 3600),
}
"""``slurm-jobname-prefix`` is the runner's: it names a run's Slurm jobs after the run, to find and cancel them."""


@dataclass(frozen=True)
class Invocation:
    """A checked run request."""

    targets: list[str]
    cores: int
    executor: str
    options: list[str]


def option_args(options: Sequence[str]) -> list[str]:
    """The arguments of whitelisted options; :class:`UnsafeInput` for the first unknown or bad one."""
    args: list[str] = []
    for index, option in enumerate(options):
        name, sep, value = option.removeprefix("--").partition("=")
        field = f"options.{index}"
        if not sep and name in FLAGS:
            args.append(f"--{name}")
        elif sep and name in VALUED:
            try:
                args += [f"--{name}", *VALUED[name](value)]
            except ValueError as exc:
                raise UnsafeInput(field, f"--{name}: {exc}") from exc
        else:
            allowed = ", ".join(sorted(FLAGS)) + ", " + ", ".join(f"{k}=..." for k in sorted(VALUED))
            raise UnsafeInput(field, f"{option!r} is not an allowed option (allowed: {allowed})")
    return args


def run_default_resources(options: Sequence[str]) -> dict[str, str]:
    """The resources of a run's ``default-resources=...`` options (already checked by :func:`option_args`)."""
    resources: dict[str, str] = {}
    for option in options:
        name, _, value = option.removeprefix("--").partition("=")
        if name == "default-resources":
            for word in filter(None, value.split(",")):
                resource, _, amount = word.partition("=")
                resources[resource] = amount
    return resources


def _base(snakemake: Path, prefix: Sequence[str]) -> list[str]:
    return [*prefix, str(snakemake), "--snakefile", "workflow/Snakefile", "--configfile", "config.json", "--nocolor"]


def unlock_argv(snakemake: Path, prefix: Sequence[str] = ()) -> list[str]:
    """``snakemake --unlock`` for the cycle (after a run that was killed without cleaning up)."""
    return [*_base(snakemake, prefix), "--unlock"]


def argv(
    snakemake: Path,
    invocation: Invocation,
    *,
    prefix: Sequence[str] = (),
    events_path: Path | None = None,
    cores: int | None = None,
    profile_resources: Mapping[str, str] | None = None,
    cycle_resources: Mapping[str, str] | None = None,
    executor_args: Sequence[str] = (),
) -> list[str]:
    """The full command line, run from the cycle folder; ``cores``: the local cores granted (default: as asked).

    On Slurm ``invocation.cores`` is for the cluster (``--cores``, and ``--jobs`` at once unless ``jobs=`` is
    given); the granted cores bound the local rules (``--local-cores``). ``profile_resources`` are the workflow
    profile's default resources, ``cycle_resources`` the cycle's own (Slurm partition and account);
    ``executor_args`` are the runner's options of the executor.
    """
    if invocation.executor not in EXECUTORS:
        raise UnsafeInput("executor", f"must be one of {', '.join(EXECUTORS)}")
    local = invocation.executor == "local"
    args = [*_base(snakemake, prefix), "--cores", str(cores if local and cores else invocation.cores)]
    if not local:
        args += ["--executor", invocation.executor, *executor_args]
        if not any(o.removeprefix("--").startswith("jobs=") for o in invocation.options):
            args += ["--jobs", str(invocation.cores)]
        if cores:
            args += ["--local-cores", str(cores)]
    if events_path is not None:
        args += ["--logger", "prodflow", "--logger-prodflow-events", str(events_path)]
    option_args(invocation.options)  # refuses bad options, naming them by their place in the request
    others = [o for o in invocation.options if not o.removeprefix("--").startswith("default-resources=")]
    args += option_args(others)
    run_resources = run_default_resources(invocation.options)
    if cycle_resources or run_resources:
        merged = {**(profile_resources or {}), **(cycle_resources or {}), **run_resources}
        args += ["--default-resources", *(f"{name}={value}" for name, value in merged.items())]
    return [*args, "--", *invocation.targets]


def jobs_of(invocation: Invocation, cores: int) -> int:
    """The ``-j`` Snakemake runs with: the granted ``cores`` locally, the cluster jobs at once on Slurm."""
    if invocation.executor == "local":
        return cores
    given = [o.partition("=")[2] for o in invocation.options if o.removeprefix("--").startswith("jobs=")]
    return int(given[-1]) if given else invocation.cores


def cores_needed(invocation: Invocation) -> int:
    """Cores of the service's machine a run uses: its ``-j`` locally, one (Snakemake itself) on a cluster."""
    return invocation.cores if invocation.executor == "local" else 1
