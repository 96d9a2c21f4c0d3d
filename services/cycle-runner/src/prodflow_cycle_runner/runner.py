"""The run queue: one operation at a time per cycle, Snakemake runs and software installs alike.

Snakemake runs of different cycles run at once within the core budget (:mod:`prodflow_cycle_runner.cores`): a
cycle's next run waits ``queued`` (its message says for whom) until the budget grants it cores. Installs take no
cores from the budget: they are short, mostly downloads and links into the shared environment store, and a new
cycle must not wait for other cycles' runs to end before it can even be installed.

State lives in SQL, so nothing is lost when the service stops: queued runs are picked up again at start, and a
run that was running when the service died is marked ``interrupted`` (its leftover processes are stopped).
Progress comes from the logger plugin's events file and is published as ``cycle.run.progress`` at most every
``progress_interval_s`` seconds, one event per interval, never one per log line. The same events make the
provenance records of the files each job wrote (:mod:`prodflow_cycle_runner.recorder`) as they are read; a run
interrupted by a crash has its events file read again at the next start, so no finished job goes unrecorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner import config_json, lineage, slurm, software
from prodflow_cycle_runner.bundled import LOGGER_PLUGIN_DIR
from prodflow_cycle_runner.cores import CoreBudget, Grant
from prodflow_cycle_runner.cycles import software_sources
from prodflow_cycle_runner.models import FINAL_STATES, CycleRow, RunRow
from prodflow_cycle_runner.processes import group_alive, interrupt_group, start_logged, stop_group
from prodflow_cycle_runner.profile import profile_default_resources
from prodflow_cycle_runner.progress import EventsTail, RunProgress
from prodflow_cycle_runner.recorder import FileRecorder, StepTracker
from prodflow_cycle_runner.run_env import run_environment, snakemake_locked, still_ours
from prodflow_cycle_runner.run_records import Publish, RunRecords, utcnow
from prodflow_cycle_runner.settings import CycleRunnerSettings
from prodflow_cycle_runner.snakemake_cli import (
    Invocation,
    argv,
    cores_needed,
    jobs_of,
    run_default_resources,
    unlock_argv,
)

_log = logging.getLogger("prodflow.cycle_runner.runner")
POLL_S = 0.25


@dataclass
class _Active:
    run_id: str
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


class RunQueue:
    """Drains each cycle's queued runs in order, one at a time per cycle; cycles share the core budget."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: CycleRunnerSettings, publish: Publish
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.records = RunRecords(sessions, publish)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._active: dict[str, _Active] = {}
        self.cores = CoreBudget(settings.max_cores, settings.core_reserve())

    def wake(self, cycle: str) -> None:
        """Make sure a worker drains ``cycle``'s queue."""
        worker = self._workers.get(cycle)
        if worker is None or worker.done():
            self._workers[cycle] = asyncio.create_task(self._drain(cycle), name=f"cycle-{cycle}")

    def active_run(self, cycle: str) -> str | None:
        """The id of the run executing on ``cycle`` in this process."""
        active = self._active.get(cycle)
        return active.run_id if active else None

    async def cancel(self, run_id: str) -> RunRow | None:
        """Cancel a queued run (waiting for cores or not) at once, or stop a running one; ``None``: no such run."""
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
            if run is None or run.state in FINAL_STATES:
                return run
            run.cancel_requested = True
            queued = run.state == "queued"
            if queued:
                run.state, run.finished_at, run.message = "cancelled", utcnow(), "cancelled before it started"
            session.add(run)
            await session.commit()
        active = self._active.get(run.cycle)
        if active is not None and active.run_id == run_id:
            active.cancel.set()  # a run waiting for cores leaves the line; a running one is stopped
        if queued:
            await self.records.announce(run, "cancelled")
        return run

    async def recover(self) -> None:
        """At start: runs left ``running`` by a stopped service become ``interrupted``; queued ones go on (those that
        waited for cores line up again in their old order before any worker starts)."""
        async with self.sessions() as session:
            stale = (await session.exec(select(RunRow).where(RunRow.state == "running"))).all()
            for run in stale:
                if run.pid and group_alive(run.pid) and still_ours(run.pid, run.events_path, run.log_path):
                    await stop_group(run.pid, self.settings.cancel_grace_s)
                if run.request.get("executor") == "slurm":
                    await slurm.cancel_run_jobs(run.id, run_environment(None, self.settings.run_env))
                run.state, run.finished_at = "interrupted", utcnow()
                run.message = "the service stopped while this run was running"
                session.add(run)
            await session.commit()
            queued = (await session.exec(select(RunRow.cycle).where(RunRow.state == "queued").distinct())).all()
            waiting = (
                await session.exec(
                    select(RunRow)
                    .where(RunRow.state == "queued", col(RunRow.waiting_since).is_not(None))
                    .order_by(col(RunRow.waiting_since), col(RunRow.id))
                )
            ).all()
        for run in stale:
            if run.kind == "install":
                await self.records.install_stopped(run.cycle, run.id, run.message)
            else:
                await self._replay(run)
            await self.records.announce(run, "failed")
        for run in waiting:
            self.cores.ask(run.cycle, run.id, cores_needed(_invocation(run)), _utc(run.waiting_since or utcnow()))
        for cycle in dict.fromkeys([*(r.cycle for r in waiting), *queued]):
            self.wake(cycle)

    async def aclose(self) -> None:
        """Stop every worker; running processes are stopped and their runs marked ``interrupted``."""
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()

    async def _drain(self, cycle: str) -> None:
        while True:
            async with self.sessions() as session:
                run = (
                    await session.exec(
                        select(RunRow)
                        .where(RunRow.cycle == cycle, RunRow.state == "queued")
                        .order_by(col(RunRow.created_at), col(RunRow.id))
                        .limit(1)
                    )
                ).first()
            if run is None:
                return
            self._active[cycle] = _Active(run.id)
            try:
                await self._run(run)
            finally:
                self.cores.release(run.id)
                self._active.pop(cycle, None)

    async def _cores_for(self, run: RunRow) -> Grant | None:
        """Wait in line for the run's cores; it stays ``queued`` with the reason as its message (also if the service
        stops meanwhile: it lines up again at the next start). ``None`` if it was cancelled while waiting."""
        since = _utc(run.waiting_since) if run.waiting_since else utcnow()
        if run.waiting_since is None:
            await self.records.update(run.id, waiting_since=since)

        async def waiting(reason: str) -> None:
            async with self.sessions() as session:
                current = await session.get(RunRow, run.id)
                if current is not None and current.state == "queued":
                    current.message = reason
                    session.add(current)
                    await session.commit()

        need = cores_needed(_invocation(run))
        cancel = self._active[run.cycle].cancel
        return await self.cores.acquire(run.cycle, run.id, need, since, waiting=waiting, cancel=cancel)

    async def _run(self, run: RunRow) -> None:
        grant: Grant | None = None
        try:
            grant = await self._cores_for(run) if run.kind == "snakemake" else Grant(0)
            if grant is not None:
                await self._execute(run, grant)
        except asyncio.CancelledError:
            if grant is not None:  # a run still waiting for cores stays queued for the next start
                await self.records.finish(run.id, "interrupted", None, "the service stopped during this run")
            raise
        except Exception as exc:
            _log.exception("run %s failed to execute", run.id)
            await self.records.finish(run.id, "failed", None, f"{type(exc).__name__}: {exc}")

    async def _execute(self, run: RunRow, grant: Grant) -> None:
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, run.cycle)
            current = await session.get(RunRow, run.id)
            if cycle is None or current is None or current.state != "queued":
                return
            current.state, current.started_at, current.message = "running", utcnow(), grant.note
            session.add(current)
            await session.commit()
        Path(current.log_path).parent.mkdir(parents=True, exist_ok=True)
        if run.kind == "install":
            await self._install(cycle, current)
        else:
            await self._snakemake(cycle, current, grant)

    async def _install(self, cycle: CycleRow, run: RunRow) -> None:
        cycle_dir = Path(cycle.path)
        config = config_json.read(cycle_dir)
        _setup_name, setup = config_json.setup_of(config, cycle.setup)
        paths = config_json.paths_of(config, cycle_dir, cycle.setup)
        plan = software.plan_env(
            setup.get("pkg_versions", {}),
            software_sources(cycle.checkouts, cycle_dir),
            python=self.settings.python,
            extra=[
                self.settings.snakemake_requirement,
                self.settings.slurm_plugin_requirement,
                str(LOGGER_PLUGIN_DIR),
            ],
            prefix=config_json.execenv_prefix(setup),
        )
        await self.records.set_software(cycle.name, {"state": "installing", "install_run": run.id})
        task = asyncio.create_task(
            software.install(
                plan,
                store=self.settings.envs(),
                install_path=paths["install"],
                uv=self.settings.uv,
                log_path=Path(run.log_path),
                cwd=cycle_dir,
                reinstall=bool(run.request.get("reinstall")),
            )
        )
        cancel = self._active[cycle.name].cancel
        waiter = asyncio.create_task(cancel.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.records.set_software(cycle.name, {"state": "cancelled", "install_run": run.id})
            await self.records.finish(run.id, "cancelled", None, "cancelled by request")
            return
        try:
            record = task.result()
        except Exception as exc:
            await self.records.set_software(cycle.name, {"state": "failed", "install_run": run.id, "error": str(exc)})
            await self.records.finish(run.id, "failed", 1, str(exc))
            return
        state = {"state": "installed", "install_run": run.id, "installed_at": record["built_at"], **record}
        await self.records.set_software(cycle.name, state)
        await self.records.finish(run.id, "succeeded", 0, f"environment {record['path']}")

    async def _snakemake(self, cycle: CycleRow, run: RunRow, grant: Grant) -> None:
        cycle_dir = Path(cycle.path)
        env_dir = Path(cycle.software.get("path", ""))
        if cycle.software.get("state") != "installed" or not software.is_complete(env_dir):
            why = "its pins changed; reinstall" if cycle.software.get("state") == "outdated" else "install it first"
            await self.records.finish(
                run.id, "failed", None, f"the cycle's software is not ready: {why} (POST .../software)"
            )
            return
        config = config_json.read(cycle_dir)
        _name, setup = config_json.setup_of(config, cycle.setup)
        invocation = _invocation(run)
        prefix = config_json.execenv_prefix(setup)
        snakemake = env_dir / "bin" / "snakemake"
        environ = run_environment(env_dir, self.settings.run_env)
        log_path, events_path = Path(run.log_path), Path(run.events_path)
        if snakemake_locked(cycle_dir):
            proc = await start_logged(unlock_argv(snakemake, prefix), cwd=cycle_dir, log_path=log_path, env=environ)
            await proc.wait()
        on_slurm = invocation.executor == "slurm"
        run_resources = run_default_resources(invocation.options)
        cycle_resources = slurm.cycle_resources(cycle.slurm) if on_slurm else {}
        profile_resources = profile_default_resources(cycle_dir) if on_slurm or run_resources else {}
        all_resources = {**profile_resources, **cycle_resources, **run_resources}
        command = argv(
            snakemake,
            invocation,
            prefix=prefix,
            events_path=events_path,
            cores=grant.cores,
            profile_resources=profile_resources,
            cycle_resources=cycle_resources,
            executor_args=slurm.executor_args(run.id, all_resources) if on_slurm else (),
        )
        _append(log_path, "$ " + " ".join(command) + "\n")
        await self.records.update(run.id, provenance=await asyncio.to_thread(lineage.run_snapshot, cycle))
        proc = await start_logged(command, cwd=cycle_dir, log_path=log_path, env=environ)
        try:
            try:
                jobs = jobs_of(invocation, grant.cores)
                await self.records.update(run.id, pid=proc.pid, cores_granted=grant.cores, jobs=jobs)
                await self.records.announce(await self.records.get(run.id), "started")
            except asyncio.CancelledError:  # a shutdown before _follow must not leave the group running
                await self._stop(proc.pid, on_slurm)
                raise
            recorder = FileRecorder(self.sessions, cycle.name, cycle_dir)
            progress = await self._follow(run, proc, events_path, on_slurm, recorder)
        finally:
            if on_slurm:  # whatever Snakemake could not cancel (killed after the grace, or a job it lost track of)
                await slurm.cancel_run_jobs(run.id, environ)
        code = proc.returncode
        cancelled = self._active[cycle.name].cancel.is_set()
        state = "cancelled" if cancelled else ("succeeded" if code == 0 else "failed")
        message = "cancelled by request" if cancelled else progress.summary(code)
        await self.records.finish(run.id, state, code, message, progress.snapshot())

    async def _stop(self, pid: int, on_slurm: bool) -> None:
        """Stop a Snakemake run's process group; on Slurm with Ctrl-C first, on which Snakemake cancels its jobs
        (on SIGTERM it would wait for them to finish)."""
        if on_slurm:
            await interrupt_group(pid, self.settings.cancel_grace_s)
        else:
            await stop_group(pid, self.settings.cancel_grace_s)

    async def _follow(
        self,
        run: RunRow,
        proc: asyncio.subprocess.Process,
        events_path: Path,
        on_slurm: bool,
        recorder: FileRecorder,
    ) -> RunProgress:
        """Feed the plugin's events into progress and file records until the process ends; publish throttled
        progress."""
        progress, tail, tracker = RunProgress(), EventsTail(events_path), StepTracker()
        cancel = self._active[run.cycle].cancel
        published_version, last_publish = 0, 0.0
        wait = asyncio.create_task(proc.wait())
        try:
            while not wait.done():
                await asyncio.wait({wait}, timeout=POLL_S)
                if cancel.is_set() and not wait.done():
                    await self._stop(proc.pid, on_slurm)
                    await wait
                await self._record(recorder, run.id, tracker, progress, tail.read())
                now = time.monotonic()
                if progress.version != published_version and now - last_publish >= self.settings.progress_interval_s:
                    published_version, last_publish = progress.version, now
                    await self.records.update(run.id, progress=progress.snapshot())
                    await self.records.announce(await self.records.get(run.id), "progress")
        except asyncio.CancelledError:
            await self._stop(proc.pid, on_slurm)
            raise
        await self._record(recorder, run.id, tracker, progress, tail.read())
        return progress

    @staticmethod
    async def _record(
        recorder: FileRecorder,
        run_id: str,
        tracker: StepTracker,
        progress: RunProgress,
        events: list[dict[str, Any]],
    ) -> None:
        """Feed ``events`` to progress and record the jobs they finish."""
        for event in events:
            progress.feed(event)
        await recorder.record_events(run_id, tracker, events)

    async def _replay(self, run: RunRow) -> None:
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, run.cycle)
        if cycle is not None and run.events_path:
            await FileRecorder(self.sessions, cycle.name, Path(cycle.path)).replay_interrupted(
                run.id, Path(run.events_path)
            )


def _invocation(run: RunRow) -> Invocation:
    return Invocation(**{k: run.request[k] for k in ("targets", "cores", "executor", "options")})


def _utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC time (SQLite gives stored times back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)
