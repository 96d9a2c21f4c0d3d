"""Cycle runs on Slurm: where their jobs go (the cycle's partition and account) and how they are found again.

Snakemake's Slurm executor names every job of a run ``<jobname prefix>_<its own run uuid>``; the runner makes the
prefix the run's id, so the jobs of a run can be listed with ``squeue`` and cancelled with ``scancel`` even when
Snakemake could not cancel them itself (it was killed, or the service stopped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from prodflow_cycle_runner.processes import CommandFailed, output_of

_log = logging.getLogger("prodflow.cycle_runner.slurm")
SLURM_TIMEOUT_S = 60.0
POLL_S = 0.5


def cycle_resources(slurm: Mapping[str, Any] | None) -> dict[str, str]:
    """The cycle's partition and account as Snakemake default resources (quoted: always read as text)."""
    settings = slurm or {}
    names = {"partition": "slurm_partition", "account": "slurm_account"}
    return {resource: repr(str(settings[key])) for key, resource in names.items() if settings.get(key)}


def executor_args(run_id: str, resources: Mapping[str, str]) -> list[str]:
    """The runner's options of the Slurm executor: jobs named after the run; no account unless one is given."""
    args = ["--slurm-jobname-prefix", run_id]
    if "slurm_account" not in resources:
        args.append("--slurm-no-account")
    return args


async def run_jobs(run_id: str, env: Mapping[str, str]) -> list[str]:
    """Ids of the run's jobs that Slurm still has pending or running (``squeue``'s default states); Snakemake
    submits them as the service's user."""
    try:
        listing = await output_of(
            ["squeue", "--noheader", "--format=%i %j", f"--user={os.getuid()}"], env=env, timeout_s=SLURM_TIMEOUT_S
        )
    except (OSError, CommandFailed, TimeoutError) as exc:
        _log.warning("could not list the Slurm jobs of %s: %s", run_id, exc)
        return []
    prefix = f"{run_id}_"
    return [job for job, _, name in (line.partition(" ") for line in listing.splitlines()) if name.startswith(prefix)]


async def cancel_run_jobs(run_id: str, env: Mapping[str, str], gone_within_s: float = SLURM_TIMEOUT_S) -> list[str]:
    """``scancel`` every job of the run that Slurm still has, and wait (at most ``gone_within_s``) until ``squeue``
    no longer shows them (cancelled jobs stay ``COMPLETING`` while their processes end); returns their ids."""
    jobs = await run_jobs(run_id, env)
    if not jobs:
        return jobs
    try:
        await output_of(["scancel", *jobs], env=env, timeout_s=SLURM_TIMEOUT_S)
    except (OSError, CommandFailed, TimeoutError) as exc:
        _log.warning("could not cancel the Slurm jobs %s of %s: %s", jobs, run_id, exc)
        return jobs
    _log.info("cancelled the Slurm jobs %s left by %s", jobs, run_id)
    deadline = time.monotonic() + gone_within_s
    left = await run_jobs(run_id, env)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        left = await run_jobs(run_id, env)
    if left:
        _log.warning("Slurm jobs %s of %s are still in the queue %.0f s after scancel", left, run_id, gone_within_s)
    return jobs
