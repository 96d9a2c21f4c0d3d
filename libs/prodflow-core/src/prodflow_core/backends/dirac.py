"""The ``dirac`` backend (the grid): JDL files and the DIRAC WMS client commands.

Written against DIRAC's documented commands ``dirac-wms-job-submit <jdl>...`` (prints ``JobID = <n>`` per job),
``dirac-wms-job-status <id>...`` (prints ``JobID=<n> Status=<s>; MinorStatus=<m>; Site=<site>;``) and
``dirac-wms-job-kill <id>...``; a valid proxy is expected in the environment. Tested with fake commands only,
not against a real DIRAC server.

Site options: ``work_dir`` (JDL files, job scripts; required), ``site`` (JDL ``Site``), ``cpu_time_s`` (JDL
``CPUTime``), ``jdl`` (extra JDL attributes, a mapping of name → value).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodflow_core.backends.base import BackendError, BackendJob, BackendState, BackendStatus
from prodflow_core.backends.commands import job_script, run_command
from prodflow_core.backends.indexed import IndexedBackend

STATE_MAP: dict[str, BackendStatus] = {
    "Submitting": BackendStatus.PENDING,
    "Received": BackendStatus.PENDING,
    "Checking": BackendStatus.PENDING,
    "Staging": BackendStatus.PENDING,
    "Waiting": BackendStatus.PENDING,
    "Matched": BackendStatus.PENDING,
    "Rescheduled": BackendStatus.PENDING,
    "Running": BackendStatus.RUNNING,
    "Completing": BackendStatus.RUNNING,
    "Completed": BackendStatus.RUNNING,  # the payload ended, outputs are being uploaded
    "Stalled": BackendStatus.UNKNOWN,  # no heartbeat: may come back, may be lost
    "Done": BackendStatus.COMPLETED,
    "Failed": BackendStatus.FAILED,
    "Killed": BackendStatus.CANCELLED,
    "Deleted": BackendStatus.CANCELLED,
}
_JOB_ID = re.compile(r"JobID\s*=\s*\[?'?(\d+)")
_PAIR = re.compile(r"(\w+)=(.*?)(?=;|\s+\w+=|$)")


def _jdl_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "{" + ", ".join(_jdl_value(v) for v in value) + "}"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace('"', '\\"') + '"'


def jdl(job: BackendJob, script: Path, extra: Mapping[str, Any]) -> str:
    """The JDL of one job: its script as executable and input sandbox, stdout/stderr in the output sandbox."""
    attributes: dict[str, Any] = {
        "JobName": job.name,
        "Executable": "/bin/sh",
        "Arguments": script.name,
        "InputSandbox": [str(script)],
        "StdOutput": "std.out",
        "StdError": "std.err",
        "OutputSandbox": ["std.out", "std.err"],
        **extra,
    }
    return "".join(f"{name} = {_jdl_value(value)};\n" for name, value in attributes.items())


def parse_status(text: str) -> dict[str, BackendState]:
    """States from ``dirac-wms-job-status`` output, one line per job."""
    states: dict[str, BackendState] = {}
    for line in text.splitlines():
        fields = {k: v.strip() for k, v in _PAIR.findall(line)}
        if "JobID" not in fields or "Status" not in fields:
            continue
        native = fields["Status"]
        state = STATE_MAP.get(native, BackendStatus.UNKNOWN)
        states[fields["JobID"]] = BackendState(
            backend_id=fields["JobID"],
            state=state,
            native_state=native,
            exit_code=0 if state == BackendStatus.COMPLETED else None,
            reason=fields.get("MinorStatus", ""),
        )
    return states


class DiracBackend(IndexedBackend):
    """Jobs on the grid through DIRAC's WMS (see the module docstring)."""

    name = "dirac"

    def __init__(self, work_dir: Path, jdl_extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(work_dir)
        self.jdl_extra = dict(jdl_extra or {})

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DiracBackend:
        if not options.get("work_dir"):
            raise BackendError("the dirac backend needs options.work_dir")
        extra = dict(options.get("jdl", {}))
        if options.get("site"):
            extra["Site"] = options["site"]
        if options.get("cpu_time_s"):
            extra["CPUTime"] = int(options["cpu_time_s"])
        return cls(Path(str(options["work_dir"])), extra)

    async def submit_new(self, jobs: list[BackendJob]) -> dict[str, str]:
        jdls = await asyncio.to_thread(self._write_jdls, jobs)
        out = await run_command(["dirac-wms-job-submit", *map(str, jdls)])
        ids = _JOB_ID.findall(out.stdout)
        if len(ids) != len(jobs):
            raise BackendError(f"dirac-wms-job-submit returned {len(ids)} job ids for {len(jobs)} JDLs")
        return {job.name: backend_id for job, backend_id in zip(jobs, ids, strict=True)}

    def _write_jdls(self, jobs: list[BackendJob]) -> list[Path]:
        batch = self.new_batch()
        paths: list[Path] = []
        for index, job in enumerate(jobs):
            script = batch / f"task-{index}.sh"
            script.write_text(job_script(job.command, ".", job.env))
            path = batch / f"task-{index}.jdl"
            path.write_text(jdl(job, script, self.jdl_extra))
            paths.append(path)
        return paths

    async def status(self, backend_ids: Sequence[str]) -> dict[str, BackendState]:
        states: dict[str, BackendState] = {}
        if backend_ids:
            out = await run_command(["dirac-wms-job-status", *backend_ids], check=False)
            states = parse_status(out.stdout)
        return {
            bid: states.get(bid)
            or BackendState(backend_id=bid, state=BackendStatus.MISSING, reason="DIRAC does not know it")
            for bid in backend_ids
        }

    async def cancel(self, backend_ids: Sequence[str]) -> None:
        if backend_ids:
            await run_command(["dirac-wms-job-kill", *backend_ids], check=False)
