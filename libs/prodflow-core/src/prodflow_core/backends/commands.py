"""Running a batch system's client commands (``sbatch``, ``condor_q``, ``dirac-wms-job-status``, ...)."""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prodflow_core.backends.base import BackendError
from prodflow_core.credentials import without_service_secrets

DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class CommandResult:
    """What a client command printed and how it ended."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
) -> CommandResult:
    """Run ``argv`` (no shell) with ``env`` added to this process's environment.

    Raises :class:`BackendError` if the command is missing, times out, or (with ``check``) exits non-zero.
    """
    full_env = {**without_service_secrets(os.environ), **(env or {})}  # sbatch passes its environment on
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
        )
    except FileNotFoundError as exc:
        raise BackendError(f"{argv[0]} is not installed or not on PATH") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise BackendError(f"{shlex.join(argv[:3])} … timed out after {timeout_s:.0f} s") from exc
    result = CommandResult(
        tuple(argv), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
    )
    if check and not result.ok:
        raise BackendError(f"{shlex.join(argv[:3])} … exited {result.returncode}: {result.stderr.strip()[:500]}")
    return result


def local_time_to_utc(text: str) -> str | None:
    """A batch system's local timestamp (``2026-11-25T13:04:20``) as RFC 3339 UTC; ``None`` if it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def epoch_to_utc(seconds: str | int | float) -> str | None:
    """Seconds since the epoch as RFC 3339 UTC (``0`` or junk → ``None``)."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    if value <= 0:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def job_script(command: str, output_dir: str, env: Mapping[str, str]) -> str:
    """A ``/bin/sh`` script that enters the job's output folder, sets its environment and runs its command."""
    lines = ["#!/bin/sh", "set -e", f"mkdir -p {shlex.quote(output_dir)}", f"cd {shlex.quote(output_dir)}"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
    lines += ["set +e", f"/bin/sh -c {shlex.quote(command)}", 'exit "$?"', ""]
    return "\n".join(lines)
