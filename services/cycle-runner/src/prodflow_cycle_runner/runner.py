"""The run queue: one operation at a time per cycle, Snakemake runs and software installs alike.

State lives in SQL, so nothing is lost when the service stops: queued runs are picked up again at start, and a
run that was running when the service died is marked ``interrupted`` (its leftover processes are stopped).
Progress comes from the logger plugin's events file and is published as ``cycle.run.progress`` at most every
``progress_interval_s`` seconds, one event per interval, never one per log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prodflow_core.credentials import without_service_secrets
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner import config_json, slurm, software
from prodflow_cycle_runner.bundled import LOGGER_PLUGIN_DIR
from prodflow_cycle_runner.cycles import software_sources
from prodflow_cycle_runner.models import FINAL_STATES, CycleRow, RunRow
from prodflow_cycle_runner.processes import command_line, group_alive, interrupt_group, start_logged, stop_group
from prodflow_cycle_runner.profile import profile_default_resources
from prodflow_cycle_runner.progress import EventsTail, RunProgress
from prodflow_cycle_runner.settings import CycleRunnerSettings
from prodflow_cycle_runner.snakemake_cli import Invocation, argv, run_default_resources, unlock_argv

_log = logging.getLogger("prodflow.cycle_runner.runner")
Publish = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]
"""``publish(short_type, subject, experiment, data)``."""
POLL_S = 0.25
_RUN_EVENT = {"succeeded": "finished", "interrupted": "failed"}


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


@dataclass
class _Active:
    run_id: str
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


class RunQueue:
    """Drains each cycle's queued runs in order, one at a time per cycle."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: CycleRunnerSettings, publish: Publish
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.publish = publish
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._active: dict[str, _Active] = {}

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
        """Cancel a queued run at once, or ask a running one to stop; ``None`` if there is no such run."""
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
            if run is None or run.state in FINAL_STATES:
                return run
            run.cancel_requested = True
            if run.state == "queued":
                run.state, run.finished_at, run.message = "cancelled", utcnow(), "cancelled before it started"
            session.add(run)
            await session.commit()
        active = self._active.get(run.cycle)
        if active is not None and active.run_id == run_id:
            active.cancel.set()
        elif run.state == "cancelled":
            await self._announce(run, "cancelled")
        return run

    async def recover(self) -> None:
        """At start: runs left ``running`` by a stopped service become ``interrupted``; queued ones go on."""
        async with self.sessions() as session:
            stale = (await session.exec(select(RunRow).where(RunRow.state == "running"))).all()
            for run in stale:
                if run.pid and group_alive(run.pid) and _is_ours(run):
                    await stop_group(run.pid, self.settings.cancel_grace_s)
                if run.request.get("executor") == "slurm":
                    await slurm.cancel_run_jobs(run.id, run_environment(None, self.settings.run_env))
                run.state, run.finished_at = "interrupted", utcnow()
                run.message = "the service stopped while this run was running"
                session.add(run)
            await session.commit()
            queued = (await session.exec(select(RunRow.cycle).where(RunRow.state == "queued").distinct())).all()
        for run in stale:
            if run.kind == "install":
                await self._install_stopped(run.cycle, run.id, run.message)
            await self._announce(run, "failed")
        for cycle in queued:
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
                await self._execute(run)
            except asyncio.CancelledError:
                await self._finish(run.id, "interrupted", None, "the service stopped during this run")
                raise
            except Exception as exc:
                _log.exception("run %s failed to execute", run.id)
                await self._finish(run.id, "failed", None, f"{type(exc).__name__}: {exc}")
            finally:
                self._active.pop(cycle, None)

    async def _execute(self, run: RunRow) -> None:
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, run.cycle)
            current = await session.get(RunRow, run.id)
            if cycle is None or current is None or current.state != "queued":
                return
            current.state, current.started_at = "running", utcnow()
            session.add(current)
            await session.commit()
        Path(current.log_path).parent.mkdir(parents=True, exist_ok=True)
        if run.kind == "install":
            await self._install(cycle, current)
        else:
            await self._snakemake(cycle, current)

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
        await self._set_software(cycle.name, {"state": "installing", "install_run": run.id})
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
            await self._set_software(cycle.name, {"state": "cancelled", "install_run": run.id})
            await self._finish(run.id, "cancelled", None, "cancelled by request")
            return
        try:
            record = task.result()
        except Exception as exc:
            await self._set_software(cycle.name, {"state": "failed", "install_run": run.id, "error": str(exc)})
            await self._finish(run.id, "failed", 1, str(exc))
            return
        state = {"state": "installed", "install_run": run.id, "installed_at": record["built_at"], **record}
        await self._set_software(cycle.name, state)
        await self._finish(run.id, "succeeded", 0, f"environment {record['path']}")

    async def _snakemake(self, cycle: CycleRow, run: RunRow) -> None:
        cycle_dir = Path(cycle.path)
        env_dir = Path(cycle.software.get("path", ""))
        if cycle.software.get("state") != "installed" or not software.is_complete(env_dir):
            why = "its pins changed; reinstall" if cycle.software.get("state") == "outdated" else "install it first"
            await self._finish(run.id, "failed", None, f"the cycle's software is not ready: {why} (POST .../software)")
            return
        config = config_json.read(cycle_dir)
        _name, setup = config_json.setup_of(config, cycle.setup)
        invocation = Invocation(**{k: run.request[k] for k in ("targets", "cores", "executor", "options")})
        prefix = config_json.execenv_prefix(setup)
        snakemake = env_dir / "bin" / "snakemake"
        environ = run_environment(env_dir, self.settings.run_env)
        log_path, events_path = Path(run.log_path), Path(run.events_path)
        if _locked(cycle_dir):  # a run killed without cleanup leaves Snakemake's lock behind
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
            profile_resources=profile_resources,
            cycle_resources=cycle_resources,
            executor_args=slurm.executor_args(run.id, all_resources) if on_slurm else (),
        )
        _append(log_path, "$ " + " ".join(command) + "\n")
        proc = await start_logged(command, cwd=cycle_dir, log_path=log_path, env=environ)
        try:
            try:
                await self._update(run.id, pid=proc.pid)
                await self._announce(await self._get(run.id), "started")
            except asyncio.CancelledError:  # a shutdown before _follow must not leave the group running
                await self._stop(proc.pid, on_slurm)
                raise
            progress = await self._follow(run, proc, events_path, on_slurm)
        finally:
            if on_slurm:  # whatever Snakemake could not cancel (killed after the grace, or a job it lost track of)
                await slurm.cancel_run_jobs(run.id, environ)
        code = proc.returncode
        cancelled = self._active[cycle.name].cancel.is_set()
        state = "cancelled" if cancelled else ("succeeded" if code == 0 else "failed")
        message = "cancelled by request" if cancelled else _summary(progress, code)
        await self._finish(run.id, state, code, message, progress.snapshot())

    async def _stop(self, pid: int, on_slurm: bool) -> None:
        """Stop a Snakemake run's process group; on Slurm with Ctrl-C first, on which Snakemake cancels its jobs
        (on SIGTERM it would wait for them to finish)."""
        if on_slurm:
            await interrupt_group(pid, self.settings.cancel_grace_s)
        else:
            await stop_group(pid, self.settings.cancel_grace_s)

    async def _follow(
        self, run: RunRow, proc: asyncio.subprocess.Process, events_path: Path, on_slurm: bool
    ) -> RunProgress:
        """Feed the plugin's events into progress until the process ends; publish throttled progress."""
        progress, tail = RunProgress(), EventsTail(events_path)
        cancel = self._active[run.cycle].cancel
        published_version, last_publish = 0, 0.0
        wait = asyncio.create_task(proc.wait())
        try:
            while not wait.done():
                await asyncio.wait({wait}, timeout=POLL_S)
                if cancel.is_set() and not wait.done():
                    await self._stop(proc.pid, on_slurm)
                    await wait
                for event in tail.read():
                    progress.feed(event)
                now = time.monotonic()
                if progress.version != published_version and now - last_publish >= self.settings.progress_interval_s:
                    published_version, last_publish = progress.version, now
                    await self._update(run.id, progress=progress.snapshot())
                    await self._announce(await self._get(run.id), "progress")
        except asyncio.CancelledError:
            await self._stop(proc.pid, on_slurm)
            raise
        for event in tail.read():
            progress.feed(event)
        return progress

    async def _get(self, run_id: str) -> RunRow:
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
            assert run is not None
            return run

    async def _update(self, run_id: str, **values: Any) -> None:
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
            if run is None:
                return
            for key, value in values.items():
                setattr(run, key, value)
            session.add(run)
            await session.commit()

    async def _finish(
        self, run_id: str, state: str, code: int | None, message: str, progress: dict[str, Any] | None = None
    ) -> None:
        values: dict[str, Any] = {"state": state, "exit_code": code, "message": message, "finished_at": utcnow()}
        if progress is not None:
            values["progress"] = progress
        await self._update(run_id, **values)
        run = await self._get(run_id)
        if run.kind == "install":
            if state != "succeeded":
                await self._install_stopped(run.cycle, run.id, message)
            await self._announce(run, "installed" if state == "succeeded" else "failed")
        else:
            await self._announce(run, _RUN_EVENT.get(state, state))

    async def _install_stopped(self, cycle_name: str, run_id: str, message: str) -> None:
        """An install that ended without finishing leaves the cycle's software ``failed`` (not ``installing``)."""
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, cycle_name)
            if cycle is None or cycle.software.get("state") != "installing":
                return
            cycle.software = {"state": "failed", "install_run": run_id, "error": message}
            session.add(cycle)
            await session.commit()

    async def _set_software(self, cycle_name: str, software_state: dict[str, Any]) -> None:
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, cycle_name)
            if cycle is None:
                return
            cycle.software = software_state
            session.add(cycle)
            await session.commit()

    async def _announce(self, run: RunRow, what: str) -> None:
        """Publish ``cycle.run.<what>`` (or ``cycle.software.<what>`` for installs); never fails the run."""
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, run.cycle)
        experiment = cycle.experiment if cycle else ""
        short = f"cycle.software.{what}" if run.kind == "install" else f"cycle.run.{what}"
        if run.kind == "install" and what not in {"installed", "failed"}:
            return
        data = {
            "cycle": run.cycle,
            "run_id": run.id,
            "kind": run.kind,
            "state": run.state,
            "request": run.request,
            "progress": _brief(run.progress),
            "exit_code": run.exit_code,
            "message": run.message,
        }
        if run.kind == "install" and cycle is not None:
            data["packages"] = cycle.software.get("packages", {})
        try:
            await self.publish(short, run.id, experiment, data)
        except Exception:
            _log.warning("could not publish %s for %s", short, run.id, exc_info=True)


def run_environment(env_dir: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Snakemake run: the cycle's venv first on PATH, nothing from the service's venv.

    Without ``env_dir``, the environment of the Slurm commands the service runs for a run (``squeue``, ``scancel``).
    """
    environ = without_service_secrets(os.environ)  # the workflow runs code of the cycle's repositories
    for name in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        environ.pop(name, None)
    environ.update(extra or {})
    if env_dir is not None:
        environ["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{environ.get('PATH', '')}"
        environ["VIRTUAL_ENV"] = str(env_dir)
    environ["PYTHONNOUSERSITE"] = "1"
    return environ


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def _is_ours(run: RunRow) -> bool:
    """True if the process ``run.pid`` is still this run's Snakemake (and not a recycled pid)."""
    assert run.pid is not None
    words = command_line(run.pid)
    return any("snakemake" in w for w in words) and any(run.events_path == w or run.log_path == w for w in words)


def _locked(cycle_dir: Path) -> bool:
    locks = cycle_dir / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def _brief(progress: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in progress.items() if k != "failures"} | {"failures": progress.get("failures", [])[:20]}


def _summary(progress: RunProgress, code: int | None) -> str:
    snap = progress.snapshot()
    text = f"{snap['done']} of {snap['total'] if snap['total'] is not None else '?'} steps done"
    if snap["failed"]:
        text += f", {snap['failed']} failed ({', '.join(sorted({str(f['rule']) for f in progress.failures}))})"
    if code not in (0, None):
        text += f"; snakemake exited with {code}"
    return text
