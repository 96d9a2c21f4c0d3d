"""The ``slurm`` backend: ``sbatch`` (job arrays for large batches), ``squeue``/``sacct``/``scontrol``, ``scancel``.

Site options: ``work_dir`` (job scripts, Slurm logs and the name → id index; required, shared by submitter and
monitor), ``partition``, ``account``, ``sbatch_args`` (extra arguments), ``array_min`` (batches of at least this
many jobs go as one job array, default 10), ``slurm_conf`` (sets ``SLURM_CONF`` for the client commands),
``jobcomp_log`` (the ``jobcomp/filetxt`` file, read when neither ``sacct`` nor ``scontrol`` knows a job).

Backend ids are Slurm's: ``1234`` for a single job, ``1234_7`` for task 7 of array 1234.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodflow_core.backends.base import BackendError, BackendJob, BackendState, BackendStatus
from prodflow_core.backends.commands import job_script, local_time_to_utc, run_command
from prodflow_core.backends.indexed import IndexedBackend

STATE_MAP: dict[str, BackendStatus] = {
    "PENDING": BackendStatus.PENDING,
    "CONFIGURING": BackendStatus.PENDING,
    "REQUEUED": BackendStatus.PENDING,
    "REQUEUE_HOLD": BackendStatus.PENDING,
    "REQUEUE_FED": BackendStatus.PENDING,
    "RESV_DEL_HOLD": BackendStatus.PENDING,
    "SUSPENDED": BackendStatus.PENDING,
    "STOPPED": BackendStatus.PENDING,
    "RUNNING": BackendStatus.RUNNING,
    "COMPLETING": BackendStatus.RUNNING,
    "SIGNALING": BackendStatus.RUNNING,
    "STAGE_OUT": BackendStatus.RUNNING,
    "RESIZING": BackendStatus.RUNNING,
    "COMPLETED": BackendStatus.COMPLETED,
    "FAILED": BackendStatus.FAILED,
    "TIMEOUT": BackendStatus.FAILED,
    "NODE_FAIL": BackendStatus.FAILED,
    "OUT_OF_MEMORY": BackendStatus.FAILED,
    "BOOT_FAIL": BackendStatus.FAILED,
    "DEADLINE": BackendStatus.FAILED,
    "PREEMPTED": BackendStatus.FAILED,
    "SPECIAL_EXIT": BackendStatus.FAILED,
    "REVOKED": BackendStatus.CANCELLED,
    "CANCELLED": BackendStatus.CANCELLED,
}
_FIELD = re.compile(r"(\w+)=(\S*)")
_SQUEUE_FORMAT = "%i|%T|%r|%S"


def slurm_state(native: str) -> BackendStatus:
    """Normalise a Slurm state (``CANCELLED by 0`` → cancelled)."""
    return STATE_MAP.get(native.split()[0].rstrip("+") if native else "", BackendStatus.UNKNOWN)


def _exit_code(text: str) -> int | None:
    code, _, sig = text.partition(":")
    if not code.isdigit():
        return None
    return 128 + int(sig) if sig.isdigit() and int(sig) and not int(code) else int(code)


def parse_record(line: str) -> tuple[str, BackendState] | None:
    """A ``scontrol show job -o`` or jobcomp line as (backend id, state)."""
    fields = dict(_FIELD.findall(line))
    if "JobId" not in fields or "JobState" not in fields:
        return None
    task = fields.get("ArrayTaskId", "")
    if task and not task.isdigit():
        return None  # the still-pending rest of an array ("1-9"): squeue covers those
    backend_id = f"{fields['ArrayJobId']}_{task}" if task else fields["JobId"]
    native = fields["JobState"]
    return backend_id, BackendState(
        backend_id=backend_id,
        state=slurm_state(native),
        native_state=native,
        exit_code=_exit_code(fields.get("ExitCode", "")) if slurm_state(native).is_final else None,
        started_at=local_time_to_utc(fields.get("StartTime", "")),
        finished_at=local_time_to_utc(fields.get("EndTime", "")) if slurm_state(native).is_final else None,
        reason=fields.get("Reason", "") if fields.get("Reason") not in {None, "None"} else "",
    )


class SlurmBackend(IndexedBackend):
    """Jobs on a Slurm cluster through its client commands."""

    name = "slurm"

    def __init__(
        self,
        work_dir: Path,
        *,
        partition: str | None = None,
        account: str | None = None,
        sbatch_args: Sequence[str] = (),
        array_min: int = 10,
        slurm_conf: str | None = None,
        jobcomp_log: Path | None = None,
    ) -> None:
        super().__init__(work_dir)
        self.partition = partition
        self.account = account
        self.sbatch_args = list(sbatch_args)
        self.array_min = max(2, array_min)
        self.env = {"SLURM_CONF": slurm_conf} if slurm_conf else {}
        self.jobcomp_log = jobcomp_log
        self._sacct_works: bool | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SlurmBackend:
        if not options.get("work_dir"):
            raise BackendError("the slurm backend needs options.work_dir")
        jobcomp = options.get("jobcomp_log")
        return cls(
            Path(str(options["work_dir"])),
            partition=options.get("partition"),
            account=options.get("account"),
            sbatch_args=[str(a) for a in options.get("sbatch_args", [])],
            array_min=int(options.get("array_min", 10)),
            slurm_conf=options.get("slurm_conf"),
            jobcomp_log=Path(str(jobcomp)) if jobcomp else None,
        )

    async def submit_new(self, jobs: list[BackendJob]) -> dict[str, str]:
        batch = await asyncio.to_thread(self.new_batch)
        for index, job in enumerate(jobs):
            script = batch / f"task-{index}.sh"
            script.write_text(job_script(job.command, str(job.output_dir), job.env))
            script.chmod(0o755)
        walltimes = [job.walltime_s for job in jobs if job.walltime_s]
        common = self._common_args(max(walltimes) if walltimes else None)
        ids: dict[str, str] = {}
        if len(jobs) >= self.array_min:
            array = batch / "array.sh"
            array.write_text(f'#!/bin/sh\nexec /bin/sh "{batch}/task-$SLURM_ARRAY_TASK_ID.sh"\n')
            argv = [
                "sbatch", "--parsable", f"--array=0-{len(jobs) - 1}", f"--job-name=prodflow-{batch.name}",
                f"--output={batch}/task-%a.out", f"--error={batch}/task-%a.err", *common, str(array),
            ]  # fmt: skip
            array_id = await self._sbatch(argv)
            ids = {job.name: f"{array_id}_{i}" for i, job in enumerate(jobs)}
        else:
            for index, job in enumerate(jobs):
                argv = [
                    "sbatch", "--parsable", f"--job-name={job.name[-120:]}", f"--output={batch}/task-{index}.out",
                    f"--error={batch}/task-{index}.err", *common, str(batch / f"task-{index}.sh"),
                ]  # fmt: skip
                ids[job.name] = await self._sbatch(argv)
        return ids

    def _common_args(self, walltime_s: int | None) -> list[str]:
        args: list[str] = []
        if self.partition:
            args.append(f"--partition={self.partition}")
        if self.account:
            args.append(f"--account={self.account}")
        if walltime_s:
            args.append(f"--time={math.ceil(walltime_s / 60)}")
        return [*args, *self.sbatch_args]

    async def _sbatch(self, argv: list[str]) -> str:
        out = await run_command(argv, env=self.env)
        job_id = out.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch printed no job id: {out.stdout.strip()[:200]!r}")
        return job_id

    async def status(self, backend_ids: Sequence[str]) -> dict[str, BackendState]:
        wanted = set(backend_ids)
        states = {bid: s for bid, s in (await self._squeue()).items() if bid in wanted}
        for source in (self._sacct, self._scontrol, self._jobcomp):
            rest = wanted - states.keys()
            if not rest:
                break
            states.update({bid: s for bid, s in (await source(sorted(rest))).items() if bid in rest})
        for bid in wanted - states.keys():
            states[bid] = BackendState(backend_id=bid, state=BackendStatus.MISSING, reason="Slurm does not know it")
        return {bid: states[bid] for bid in backend_ids}

    async def _squeue(self) -> dict[str, BackendState]:
        out = await run_command(["squeue", "--me", "-h", "-r", "-o", _SQUEUE_FORMAT], env=self.env)
        states: dict[str, BackendState] = {}
        for line in out.stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 4:
                continue
            bid, native, reason, start = parts
            states[bid] = BackendState(
                backend_id=bid,
                state=slurm_state(native),
                native_state=native,
                started_at=local_time_to_utc(start) if slurm_state(native) == BackendStatus.RUNNING else None,
                reason="" if reason == "None" else reason,
            )
        return states

    async def _sacct(self, backend_ids: list[str]) -> dict[str, BackendState]:
        if self._sacct_works is False:
            return {}
        argv = ["sacct", "-n", "-P", "-X", "-o", "JobID,State,ExitCode,Start,End", "-j", ",".join(backend_ids)]
        out = await run_command(argv, env=self.env, check=False)
        self._sacct_works = out.ok and "accounting storage is disabled" not in out.stderr
        states: dict[str, BackendState] = {}
        for line in out.stdout.splitlines() if self._sacct_works else []:
            parts = line.split("|")
            if len(parts) != 5:
                continue
            bid, native, code, start, end = parts
            final = slurm_state(native).is_final
            states[bid] = BackendState(
                backend_id=bid, state=slurm_state(native), native_state=native,
                exit_code=_exit_code(code) if final else None, started_at=local_time_to_utc(start),
                finished_at=local_time_to_utc(end) if final else None,
            )  # fmt: skip
        return states

    async def _scontrol(self, backend_ids: list[str]) -> dict[str, BackendState]:
        states: dict[str, BackendState] = {}
        for base in sorted({bid.split("_")[0] for bid in backend_ids}):
            out = await run_command(["scontrol", "show", "job", "-o", base], env=self.env, check=False)
            for line in out.stdout.splitlines() if out.ok else []:
                record = parse_record(line)
                if record is not None:
                    states[record[0]] = record[1]
        return states

    async def _jobcomp(self, backend_ids: list[str]) -> dict[str, BackendState]:
        if self.jobcomp_log is None:
            return {}
        log = self.jobcomp_log
        text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
        states: dict[str, BackendState] = {}
        for line in text.splitlines():
            record = parse_record(line)
            if record is not None:
                states[record[0]] = record[1]  # later lines win: a requeued job's last end
        return states

    async def cancel(self, backend_ids: Sequence[str]) -> None:
        if backend_ids:
            # scancel complains (non-zero) about jobs that already ended; that is not an error here.
            await run_command(["scancel", *backend_ids], env=self.env, check=False)
