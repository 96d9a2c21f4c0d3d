"""Child processes of the service: argument lists only (never a shell), their own process group, output to a file.

A process group per child lets a cancel reach everything the child started (Snakemake's jobs, the installer's
builds), and lets a restarted service find and stop what a crashed one left behind.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path


class CommandFailed(RuntimeError):
    """A command that had to succeed did not."""

    def __init__(self, argv: Sequence[str], code: int, output: str) -> None:
        super().__init__(f"{argv[0]} exited with {code}: {output.strip()[-2000:]}")
        self.code = code
        self.output = output


async def start_logged(
    argv: Sequence[str], *, cwd: Path, log_path: Path, env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """Start ``argv`` in a new session, its stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )


async def run_logged(argv: Sequence[str], *, cwd: Path, log_path: Path, env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` to the end with its output appended to ``log_path``; returns the exit code."""
    with log_path.open("ab") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
    proc = await start_logged(argv, cwd=cwd, log_path=log_path, env=env)
    try:
        return await proc.wait()
    except asyncio.CancelledError:
        await stop_group(proc.pid, grace_s=5.0)
        raise


async def output_of(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout_s: float = 300.0
) -> str:
    """Run a short command and return its stdout; :class:`CommandFailed` unless it exits 0."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except (TimeoutError, asyncio.CancelledError):
        await stop_group(proc.pid, grace_s=1.0)
        raise
    if proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode or -1, (err or out).decode(errors="replace"))
    return out.decode(errors="replace")


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid``; False if it is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pid: int) -> bool:
    """True while any process of the group led by ``pid`` exists."""
    return signal_group(pid, 0)


async def stop_group(pid: int, grace_s: float) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace_s``."""
    if not signal_group(pid, signal.SIGTERM) or await _ended_within(pid, grace_s):
        return
    signal_group(pid, signal.SIGKILL)
    await _ended_within(pid, 1.0)


async def interrupt_group(pid: int, grace_s: float) -> None:
    """SIGINT the group (Snakemake's Ctrl-C: it cancels its remote jobs and exits), then :func:`stop_group` what
    is left after ``grace_s``."""
    if not signal_group(pid, signal.SIGINT) or await _ended_within(pid, grace_s):
        return
    await stop_group(pid, grace_s)


async def _ended_within(pid: int, grace_s: float) -> bool:
    """True once no process of the group is left, checked every 0.1 s for ``grace_s`` (at least once)."""
    for _ in range(max(1, int(grace_s / 0.1))):
        if not group_alive(pid):
            return True
        await asyncio.sleep(0.1)
    return not group_alive(pid)


def command_line(pid: int) -> list[str]:
    """The argument list of a live process (empty if it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
