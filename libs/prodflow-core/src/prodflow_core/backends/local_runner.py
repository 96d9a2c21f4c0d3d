"""The detached wrapper of the ``local`` backend: runs one job, then the next queued ones, in the backend's folder.

Standard library only: :func:`local_folder.spawn_all` starts it as ``python -I local_runner.py run <job folder>...``
(a file, not ``-m``, so it starts without importing prodflow; its sibling :mod:`local_folder` is found by path).
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __package__:
    from prodflow_core.backends.local_folder import (
        DEFAULT_MAX_RUNNING,
        WorkRoot,
        now_iso,
        read_json,
        start_ticks,
        write_json,
    )
else:  # started as a file: the folder module beside it, without prodflow
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from local_folder import DEFAULT_MAX_RUNNING, WorkRoot, now_iso, read_json, start_ticks, write_json

KILL_GRACE_S = 10.0  # SIGTERM, then SIGKILL this long after


class _Cancel:
    def __init__(self) -> None:
        self.asked_at: float | None = None
        self.timed_out = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.asked_at is None:
            self.asked_at = time.monotonic()


def _check(job: Path, child: subprocess.Popen[bytes], cancel: _Cancel, deadline: float | None) -> None:
    """While the job runs: stop it if it was cancelled or ran past its walltime."""
    if cancel.asked_at is None and (job / "cancelled").exists():
        cancel.asked_at = time.monotonic()  # asked before our signal handler was in place
    if deadline is not None and time.monotonic() > deadline and cancel.asked_at is None:
        cancel.timed_out = True
        cancel.asked_at = time.monotonic()
    if cancel.asked_at is not None:
        _stop(child, cancel.asked_at)


@contextlib.contextmanager
def _exit_watch(child: subprocess.Popen[bytes]) -> Iterator[Callable[[float], bool]]:
    """A wait for the job's end of at most a given time, true once it ended: on the process's pidfd (Linux 5.3+),
    which wakes as it ends; else ``Popen.wait``, whose growing sleeps saw a trivial job's end milliseconds late."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):
        pidfd = -1

    def exited_within(timeout_s: float) -> bool:
        if pidfd >= 0:
            select.select([pidfd], [], [], timeout_s)
            return child.poll() is not None
        try:
            child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    try:
        yield exited_within
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _stop(child: subprocess.Popen[bytes], since: float) -> None:
    sig = signal.SIGKILL if time.monotonic() - since > KILL_GRACE_S else signal.SIGTERM
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)


# prodflow_core.credentials.SERVICE_ENV_PREFIXES and SECRET_ENV_WORDS: this file runs without prodflow.
_SERVICE_ENV_PREFIXES = ("PRODFLOW_", "GATEWAY_", "REQUEST_API_", "SUBMITTER_", "MONITOR_", "CYCLE_RUNNER_")
_SECRET_ENV_WORDS = ("SECRET", "PASSWORD", "TOKEN", "_URL")


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less the secrets of the services that started the wrapper (a job never sees them)."""
    return {
        name: value
        for name, value in environ.items()
        if not (name.upper().startswith(_SERVICE_ENV_PREFIXES) and any(w in name.upper() for w in _SECRET_ENV_WORDS))
    }


@functools.cache
def _wrapper_environment() -> dict[str, str]:
    """What every job of this wrapper starts from (filtering the environment was a fifth of a wrapper's work)."""
    return job_environment(os.environ)


@functools.cache
def _own_start_ticks(pid: int) -> int | None:
    """This wrapper's start time (``pid`` is its own: a cache filled before a fork would be wrong after it)."""
    return start_ticks(pid)


def run_job(job: Path) -> dict[str, Any] | None:
    """Run the job of folder ``job`` to its end and record the outcome (the wrapper's body); its spec, or ``None``
    if it has none."""
    spec = read_json(job / "spec.json")
    if spec is None:
        return None
    cancel = _Cancel()
    signal.signal(signal.SIGTERM, cancel)
    signal.signal(signal.SIGINT, cancel)
    ticks = _own_start_ticks(os.getpid())
    write_json(job / "pid.json", {"pid": os.getpid(), "start_ticks": ticks, "started_at": now_iso()})
    root = WorkRoot(job.parent.parent)
    if (job / "cancelled").exists():  # cancelled between claim and start: never run it
        write_json(
            job / "result.json", {"exit_code": None, "signal": None, "finished_at": now_iso(), "timed_out": False}
        )
        root.note_change(spec["name"])
        return spec
    root.note_change(spec["name"])
    output_dir = Path(spec["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    env = {**_wrapper_environment(), **spec.get("env", {}), "PRODFLOW_JOB_NAME": spec["name"]}
    walltime = spec.get("walltime_s")
    deadline = time.monotonic() + float(walltime) if walltime else None
    with open(job / "stdout.log", "ab") as out, open(job / "stderr.log", "ab") as err:
        child = subprocess.Popen(
            ["/bin/sh", "-c", spec["command"]],
            cwd=output_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            process_group=0,
        )
        write_json(job / "child.json", {"pgid": child.pid, "start_ticks": start_ticks(child.pid)})
        with _exit_watch(child) as exited_within:
            while not exited_within(0.2):
                _check(job, child, cancel, deadline)
    code = child.returncode
    write_json(
        job / "result.json",
        {
            "exit_code": code if code >= 0 else 128 - code,
            "signal": -code if code < 0 else None,
            "finished_at": now_iso(),
            "timed_out": cancel.timed_out,
        },
    )
    root.note_change(spec["name"])
    return spec


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "run":
        print("usage: local_runner.py run <job folder>...", file=sys.stderr)
        return 2
    # One wrapper per job, each forked from this launcher, which then exits: the wrappers are nobody's children
    # and a submission of many jobs costs one interpreter start, not one per job.
    for folder in argv[2:]:
        if os.fork() == 0:
            return serve(Path(folder))
    os._exit(0)


def serve(first_job: Path) -> int:
    """The wrapper's life: run ``first_job``, then the next queued ones while there are any."""
    job: Path | None = first_job
    root = WorkRoot(first_job.parent.parent, remake=False)
    try:
        # A finishing wrapper runs the next queued job itself: one interpreter start per slot, not per job.
        while job is not None:
            spec = run_job(job) or {}
            max_running = int(spec.get("max_running", DEFAULT_MAX_RUNNING))
            claimed = root.pump(max_running, keep=1, finished=spec.get("name"))
            name = claimed[0] if claimed else root.linger(max_running, job)
            job = root.job_dir(name) if name is not None else None
    except FileNotFoundError:
        if root.root.is_dir():
            raise
        return 0  # the work folder was deleted: nothing is left to run or to report to
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
