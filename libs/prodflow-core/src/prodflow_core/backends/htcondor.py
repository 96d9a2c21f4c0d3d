"""The ``htcondor`` backend: a submit description per batch and the HTCondor client commands.

Written against HTCondor's documented commands: ``condor_submit -terse <file>`` (prints ``<c>.<p> - <c>.<q>``),
``condor_q -af:j JobStatus ExitCode JobStartDate CompletionDate HoldReason <cluster>...``, the same attributes
from ``condor_history`` for jobs that left the queue, and ``condor_rm <id>...``. Tested with fake commands
only, not against a real HTCondor pool.

Site options: ``work_dir`` (submit files, scripts, logs; required), ``requirements``, ``submit`` (extra submit
commands, a mapping of name → value). Backend ids are ``<cluster>.<proc>``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodflow_core.backends.base import BackendError, BackendJob, BackendState, BackendStatus
from prodflow_core.backends.commands import epoch_to_utc, job_script, run_command
from prodflow_core.backends.indexed import IndexedBackend

ATTRIBUTES = ("JobStatus", "ExitCode", "JobStartDate", "CompletionDate", "HoldReason")
_TERSE = re.compile(r"^(\d+)\.(\d+)\s*-\s*(\d+)\.(\d+)\s*$", re.MULTILINE)


def condor_state(job_status: str, exit_code: int | None) -> BackendStatus:
    """Normalise HTCondor's ``JobStatus`` number."""
    if job_status == "4":
        return BackendStatus.COMPLETED if exit_code == 0 else BackendStatus.FAILED
    return {
        "1": BackendStatus.PENDING,  # idle
        "2": BackendStatus.RUNNING,
        "3": BackendStatus.CANCELLED,  # removed
        "5": BackendStatus.PENDING,  # held
        "6": BackendStatus.RUNNING,  # transferring output
        "7": BackendStatus.PENDING,  # suspended
    }.get(job_status, BackendStatus.UNKNOWN)


def parse_ads(text: str) -> dict[str, BackendState]:
    """States from ``-af:j`` output: ``<cluster>.<proc> <JobStatus> <ExitCode> <start> <end> <HoldReason...>``."""
    states: dict[str, BackendState] = {}
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5 or "." not in parts[0]:
            continue
        bid, job_status, code, start, end = parts[:5]
        exit_code = int(code) if code.lstrip("-").isdigit() else None
        state = condor_state(job_status, exit_code)
        hold = parts[5] if len(parts) > 5 and parts[5] != "undefined" else ""
        states[bid] = BackendState(
            backend_id=bid,
            state=state,
            native_state=job_status,
            exit_code=exit_code if state.is_final else None,
            started_at=epoch_to_utc(start),
            finished_at=epoch_to_utc(end) if state.is_final else None,
            reason=hold,
        )
    return states


class HTCondorBackend(IndexedBackend):
    """Jobs in an HTCondor pool (see the module docstring)."""

    name = "htcondor"

    def __init__(self, work_dir: Path, submit_extra: Mapping[str, str] | None = None) -> None:
        super().__init__(work_dir)
        self.submit_extra = dict(submit_extra or {})

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HTCondorBackend:
        if not options.get("work_dir"):
            raise BackendError("the htcondor backend needs options.work_dir")
        extra = {str(k): str(v) for k, v in dict(options.get("submit", {})).items()}
        if options.get("requirements"):
            extra["requirements"] = str(options["requirements"])
        return cls(Path(str(options["work_dir"])), extra)

    async def submit_new(self, jobs: list[BackendJob]) -> dict[str, str]:
        description = await asyncio.to_thread(self._write_description, jobs)
        out = await run_command(["condor_submit", "-terse", str(description)])
        match = _TERSE.search(out.stdout)
        if match is None or int(match[4]) - int(match[2]) + 1 != len(jobs):
            raise BackendError(f"condor_submit answered {out.stdout.strip()[:200]!r} for {len(jobs)} jobs")
        cluster, first = match[1], int(match[2])
        return {job.name: f"{cluster}.{first + offset}" for offset, job in enumerate(jobs)}

    def _write_description(self, jobs: list[BackendJob]) -> Path:
        batch = self.new_batch()
        lines = [
            "universe = vanilla",
            "executable = /bin/sh",
            "transfer_executable = false",
            f"log = {batch}/condor.log",
        ]
        lines += [f"{key} = {value}" for key, value in sorted(self.submit_extra.items())]
        walltimes = [job.walltime_s for job in jobs if job.walltime_s]
        if walltimes:
            lines.append(f"periodic_remove = (JobStatus == 2) && (time() - EnteredCurrentStatus > {max(walltimes)})")
        for index, job in enumerate(jobs):
            script = batch / f"task-{index}.sh"
            script.write_text(job_script(job.command, str(job.output_dir), job.env))
            lines += [
                f'+ProdflowJob = "{job.name}"',
                f"arguments = {script}",
                f"output = {batch}/task-{index}.out",
                f"error = {batch}/task-{index}.err",
                "queue",
            ]
        path = batch / "jobs.sub"
        path.write_text("\n".join(lines) + "\n")
        return path

    async def status(self, backend_ids: Sequence[str]) -> dict[str, BackendState]:
        clusters = sorted({bid.split(".")[0] for bid in backend_ids})
        states: dict[str, BackendState] = {}
        if clusters:
            queue = await run_command(["condor_q", *clusters, "-af:j", *ATTRIBUTES], check=False)
            states = parse_ads(queue.stdout)
            gone = [bid for bid in backend_ids if bid not in states]
            if gone:
                history = await run_command(["condor_history", *gone, "-af:j", *ATTRIBUTES], check=False)
                states.update({k: v for k, v in parse_ads(history.stdout).items() if k in gone})
        return {
            bid: states.get(bid)
            or BackendState(backend_id=bid, state=BackendStatus.MISSING, reason="HTCondor does not know it")
            for bid in backend_ids
        }

    async def cancel(self, backend_ids: Sequence[str]) -> None:
        if backend_ids:
            await run_command(["condor_rm", *backend_ids], check=False)
