"""The ``local`` backend: each job runs on this machine under a detached wrapper, with a concurrency limit.

Site options: ``work_dir`` (the backend's folder, required: submitter and monitor must name the same one) and
``max_running`` (jobs running at once, default 4). State lives in files (see :mod:`local_folder`), so the
backend answers ``status`` from any process and survives restarts of the service that submitted: running jobs
go on, queued jobs are started by finishing ones, and a job whose wrapper died is reported ``missing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prodflow_core.backends import local_folder
from prodflow_core.backends.base import Backend, BackendError, BackendJob, BackendState, BackendStatus
from prodflow_core.backends.journal import Changed, journal_end, journal_moved, read_journal


class LocalBackend(Backend):
    """Runs jobs as local processes (see the module docstring)."""

    name = "local"
    keeps_journal = True
    names_are_ids = True

    def __init__(self, work_dir: Path, max_running: int = local_folder.DEFAULT_MAX_RUNNING) -> None:
        if max_running < 1:
            raise BackendError("max_running must be at least 1")
        self.root = local_folder.WorkRoot(Path(work_dir))
        self.max_running = max_running

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> LocalBackend:
        if not options.get("work_dir"):
            raise BackendError("the local backend needs options.work_dir")
        return cls(Path(str(options["work_dir"])), int(options.get("max_running", local_folder.DEFAULT_MAX_RUNNING)))

    async def submit(self, jobs: Sequence[BackendJob]) -> list[str]:
        ids = await asyncio.to_thread(self._enqueue, list(jobs))
        await asyncio.to_thread(self.root.pump, self.max_running)
        await asyncio.to_thread(self.root.prune_journal)
        return ids

    async def status(self, backend_ids: Sequence[str]) -> dict[str, BackendState]:
        return await asyncio.to_thread(lambda: {bid: self._state(bid) for bid in backend_ids})

    async def cancel(self, backend_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self._cancel, list(backend_ids))
        await asyncio.to_thread(self.root.pump, self.max_running)

    async def changed_since(self, cursor: str | None) -> Changed:
        if cursor is None:
            return Changed([], await asyncio.to_thread(journal_end, self.root.journal))
        return await asyncio.to_thread(read_journal, self.root.journal, cursor)

    async def journal_moved(self, cursor: str) -> bool:
        return journal_moved(self.root.journal, cursor)  # a stat and a listing: not worth a thread hop

    async def lookup(self, names: Sequence[str]) -> dict[str, str]:
        return {n: n for n in names if (self.root.job_dir(n) / "spec.json").exists()}

    async def resume(self) -> None:
        await asyncio.to_thread(self.root.pump, self.max_running)

    def log_paths(self, backend_id: str) -> tuple[Path, Path]:
        """The job's captured stdout and stderr."""
        job = self.root.job_dir(backend_id)
        return job / "stdout.log", job / "stderr.log"

    def _enqueue(self, jobs: list[BackendJob]) -> list[str]:
        ids: list[str] = []
        with self.root.locked():
            for index, job in enumerate(jobs):
                folder = self.root.job_dir(job.name)
                if folder.exists() and self._state(job.name).state != BackendStatus.MISSING:
                    ids.append(job.name)  # already here and not lost: a re-send, do not run it twice
                    continue
                if folder.exists():
                    folder.rename(folder.with_name(f"{folder.name}.lost-{time.time_ns()}"))
                folder.mkdir(parents=True)
                spec = {
                    **job.model_dump(mode="json"),
                    "submitted_at": local_folder.now_iso(),
                    "max_running": self.max_running,
                }
                local_folder.write_json(folder / "spec.json", spec)
                self.root.enqueue(folder, job.name, f"{time.time_ns():020d}-{index:06d}")
                ids.append(job.name)
        return ids

    def _state(self, backend_id: str) -> BackendState:
        job = self.root.job_dir(backend_id)
        spec = local_folder.read_json(job / "spec.json")
        if spec is None:
            return BackendState(backend_id=backend_id, state=BackendStatus.MISSING, reason="no such job")
        cancelled = (job / "cancelled").exists()
        pid_info = local_folder.read_json(job / "pid.json") or {}
        started = pid_info.get("started_at")
        result = local_folder.read_json(job / "result.json")
        if result is not None:
            return _finished(backend_id, result, started, cancelled)
        if not (job / "claimed").exists():
            state = BackendStatus.CANCELLED if cancelled else BackendStatus.PENDING
            return BackendState(backend_id=backend_id, state=state, native_state=state.value.upper())
        if self.root.holds_slot(backend_id):
            return BackendState(
                backend_id=backend_id, state=BackendStatus.RUNNING, native_state="RUNNING", started_at=started
            )
        result = local_folder.read_json(job / "result.json")  # it may have finished while we looked
        if result is not None:
            return _finished(backend_id, result, started, cancelled)
        state = BackendStatus.CANCELLED if cancelled else BackendStatus.MISSING
        return BackendState(
            backend_id=backend_id,
            state=state,
            native_state="LOST",
            started_at=started,
            reason="the wrapper process died without recording an exit code",
        )

    def _cancel(self, backend_ids: list[str]) -> None:
        with self.root.locked():
            for backend_id in backend_ids:
                job = self.root.job_dir(backend_id)
                if not job.exists() or (job / "result.json").exists():
                    continue
                (job / "cancelled").write_text(local_folder.now_iso())
                self.root.note_change(backend_id)
                pid_info = local_folder.read_json(job / "pid.json")
                if pid_info is not None and local_folder.wrapper_alive(pid_info):
                    # The wrapper stops the job's process group (TERM, then KILL) and records the exit.
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid_info["pid"]), signal.SIGTERM)
                    continue
                child = local_folder.read_json(job / "child.json")
                if child is not None and local_folder.wrapper_alive({"pid": child["pgid"], **child}):
                    with contextlib.suppress(ProcessLookupError):  # an orphan of a dead wrapper
                        os.killpg(int(child["pgid"]), signal.SIGKILL)

    def purge(self, backend_ids: Sequence[str]) -> None:
        """Delete the folders of finished jobs (their logs); outputs in their output folders are kept."""
        for backend_id in backend_ids:
            if self._state(backend_id).state.is_final:
                shutil.rmtree(self.root.job_dir(backend_id), ignore_errors=True)


def _finished(backend_id: str, result: dict[str, Any], started: str | None, cancelled: bool) -> BackendState:
    code = result.get("exit_code")
    if cancelled:
        state, native = BackendStatus.CANCELLED, "CANCELLED"
    elif code == 0:
        state, native = BackendStatus.COMPLETED, "COMPLETED"
    else:
        state, native = BackendStatus.FAILED, "TIMEOUT" if result.get("timed_out") else "FAILED"
    reason = ""
    if result.get("timed_out"):
        reason = "walltime exceeded"
    elif result.get("signal"):
        reason = f"killed by signal {result['signal']}"
    return BackendState(
        backend_id=backend_id,
        state=state,
        native_state=native,
        exit_code=code,
        started_at=started,
        finished_at=result.get("finished_at"),
        reason=reason,
    )
