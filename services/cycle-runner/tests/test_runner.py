"""The run queue with a stand-in ``snakemake`` (a small script that writes the logger plugin's events).

These tests cover queueing, throttled progress, failures, cancellation and recovery after a crash in seconds;
test_runs.py runs the real Snakemake.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prodflow_core.sql import make_engine, session_maker
from prodflow_cycle_runner import config_json
from prodflow_cycle_runner.deps import queued_run
from prodflow_cycle_runner.models import CycleRow, RunRow
from prodflow_cycle_runner.processes import group_alive
from prodflow_cycle_runner.runner import RunQueue, utcnow
from prodflow_cycle_runner.settings import CycleRunnerSettings
from prodflow_cycle_runner.software import MARKER
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

STAND_IN = textwrap.dedent(
    """\
    #!{python}
    # Stand-in for snakemake: writes what the prodflow logger plugin would, per target.
    import json, subprocess, sys, time
    args = sys.argv[1:]
    events = args[args.index("--logger-prodflow-events") + 1] if "--logger-prodflow-events" in args else None
    target = args[-1]
    out = open(events, "a", buffering=1) if events else None
    def emit(**doc):
        if out:
            out.write(json.dumps(doc) + "\\n")
    print("stand-in snakemake", " ".join(args), flush=True)
    n = 3 if target != "slow" else 1000
    emit(event="run_info", stats={{"step": n, "total": n}})
    for i in range(1, n + 1):
        emit(event="job_info", jobid=i, rule_name="step", wildcards={{"i": str(i)}})
        if target == "slow":
            subprocess.run(["sleep", "30"])
        if target == "fail" and i == 2:
            emit(event="job_error", jobid=i, rule_name="step", wildcards={{"i": str(i)}}, log=["step.log"])
            print("Error in rule step", flush=True)
            sys.exit(1)
        time.sleep(0.05)
        emit(event="job_finished", jobid=i)
        emit(event="progress", done=i, total=n)
        print(f"{{i}} of {{n}} steps done", flush=True)
    """
)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as conn:
        tables = [CycleRow.__table__, RunRow.__table__]  # type: ignore[attr-defined]
        await conn.run_sync(lambda c: CycleRow.metadata.create_all(c, tables=tables))
    yield session_maker(engine)
    await engine.dispose()


class Published(list[tuple[str, str, dict[str, Any]]]):
    async def __call__(self, short_type: str, subject: str, experiment: str, data: dict[str, Any]) -> None:
        self.append((short_type, subject, data))

    def types(self, subject: str) -> list[str]:
        return [t for t, s, _ in self if s == subject]


def _env(tmp_path: Path) -> Path:
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    script = env / "bin" / "snakemake"
    script.write_text(STAND_IN.format(python=sys.executable))
    script.chmod(0o755)
    (env / MARKER).write_text(json.dumps({"built_at": "now", "packages": {}}))
    return env


async def _cycle(sessions: async_sessionmaker[AsyncSession], tmp_path: Path, installed: bool = True) -> CycleRow:
    folder = tmp_path / "production" / "c1"
    folder.mkdir(parents=True)
    config_json.write(folder, config_json.default_config("l200", {}))
    software = {"state": "installed", "path": str(_env(tmp_path))} if installed else {"state": "none"}
    row = CycleRow(
        name="c1",
        experiment="legend",
        setup="l200",
        path=str(folder),
        created_at=utcnow(),
        created_by="t",
        checkouts={},
        software=software,
    )
    async with sessions() as session:
        session.add(row)
        await session.commit()
    return row


async def _submit(
    sessions: async_sessionmaker[AsyncSession], cycle: CycleRow, target: str, executor: str = "local", **state: Any
) -> RunRow:
    run = queued_run(
        cycle.name,
        cycle.path,
        "t",
        {"targets": [target], "cores": 1, "executor": executor, "options": []},
        kind="snakemake",
    )
    for key, value in state.items():
        setattr(run, key, value)
    async with sessions() as session:
        session.add(run)
        await session.commit()
    return run


async def _final(sessions: async_sessionmaker[AsyncSession], run_id: str, timeout_s: float = 30) -> RunRow:
    for _ in range(int(timeout_s / 0.05)):
        async with sessions() as session:
            run = await session.get(RunRow, run_id)
            assert run is not None
            if run.state in {"succeeded", "failed", "cancelled", "interrupted"}:
                return run
        await asyncio.sleep(0.05)
    raise TimeoutError(run_id)


def _text(path: str) -> str:
    return Path(path).read_text() if Path(path).exists() else ""


def _leftover_snakemake(events: Path) -> subprocess.Popen[bytes]:
    """A process that looks like a run's snakemake (what a crashed service leaves behind)."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "snakemake", "--logger-prodflow-events", str(events)]
    return subprocess.Popen(argv, start_new_session=True)


async def _announced(published: Published, run_id: str, short_type: str) -> list[str]:
    """The run's event types once ``short_type`` is among them (published just after the final state is stored)."""
    for _ in range(100):
        if short_type in published.types(run_id):
            break
        await asyncio.sleep(0.05)
    return published.types(run_id)


async def _gone(pgid: int) -> bool:
    """True once no process of the group is left (the kernel may take a moment to reap it)."""
    for _ in range(100):
        if not group_alive(pgid):
            return True
        await asyncio.sleep(0.05)
    return False


def _queue(sessions: async_sessionmaker[AsyncSession], tmp_path: Path, published: Published) -> RunQueue:
    settings = CycleRunnerSettings(data_dir=tmp_path, progress_interval_s=0.0, cancel_grace_s=2.0)
    return RunQueue(sessions, settings, published)


async def test_runs_in_order_with_progress(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    cycle = await _cycle(sessions, tmp_path)
    published = Published()
    queue = _queue(sessions, tmp_path, published)
    first, second = await _submit(sessions, cycle, "ok"), await _submit(sessions, cycle, "ok")
    queue.wake("c1")
    queue.wake("c1")
    done = [await _final(sessions, r.id) for r in (first, second)]
    assert [r.state for r in done] == ["succeeded", "succeeded"]
    assert done[1].started_at is not None and done[0].finished_at is not None
    assert done[1].started_at >= done[0].finished_at
    assert done[0].progress["done"] == done[0].progress["total"] == 3
    assert done[0].message == "3 of 3 steps done"
    types = await _announced(published, first.id, "cycle.run.finished")
    assert types[0] == "cycle.run.started" and types[-1] == "cycle.run.finished"
    log = _text(first.log_path)
    assert "--logger prodflow" in log and "3 of 3 steps done" in log
    await queue.aclose()


async def test_failure_is_reported(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    cycle = await _cycle(sessions, tmp_path)
    published = Published()
    queue = _queue(sessions, tmp_path, published)
    run = await _submit(sessions, cycle, "fail")
    queue.wake("c1")
    done = await _final(sessions, run.id)
    assert (done.state, done.exit_code) == ("failed", 1)
    assert done.progress["failures"][0]["rule"] == "step"
    assert "1 failed (step)" in done.message
    assert (await _announced(published, run.id, "cycle.run.failed"))[-1] == "cycle.run.failed"
    assert published[-1][2]["progress"]["failed"] == 1
    await queue.aclose()


async def test_cancel_stops_the_process_group(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    cycle = await _cycle(sessions, tmp_path)
    published = Published()
    queue = _queue(sessions, tmp_path, published)
    run = await _submit(sessions, cycle, "slow")
    queue.wake("c1")
    pid = None
    for _ in range(600):
        async with sessions() as session:
            current = await session.get(RunRow, run.id)
            pid = current.pid if current else None
        if pid:
            break
        await asyncio.sleep(0.05)
    assert pid is not None and group_alive(pid)
    await asyncio.sleep(0.5)  # the stand-in is inside its `sleep 30` child now
    await queue.cancel(run.id)
    done = await _final(sessions, run.id, timeout_s=30)
    assert done.state == "cancelled"
    assert await _gone(pid)  # the child `sleep` went with it
    assert (await _announced(published, run.id, "cycle.run.cancelled"))[-1] == "cycle.run.cancelled"
    await queue.aclose()


async def test_cancel_interrupts_a_slurm_run(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    """Snakemake cancels its Slurm jobs on SIGINT (Ctrl-C), not on SIGTERM: a Slurm run gets SIGINT first."""
    cycle = await _cycle(sessions, tmp_path)
    queue = _queue(sessions, tmp_path, Published())
    run = await _submit(sessions, cycle, "slow", executor="slurm")
    queue.wake("c1")
    for _ in range(600):
        if "stand-in snakemake" in _text(run.log_path):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the stand-in is inside its `sleep 30` child now
    await queue.cancel(run.id)
    done = await _final(sessions, run.id, timeout_s=30)
    assert done.state == "cancelled"
    log = _text(run.log_path)
    assert f"--slurm-jobname-prefix {run.id} --slurm-no-account" in log
    assert "KeyboardInterrupt" in log  # SIGINT, not SIGTERM or SIGKILL
    await queue.aclose()


async def test_software_must_be_installed(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    cycle = await _cycle(sessions, tmp_path, installed=False)
    queue = _queue(sessions, tmp_path, Published())
    run = await _submit(sessions, cycle, "ok")
    queue.wake("c1")
    done = await _final(sessions, run.id)
    assert done.state == "failed" and "software is not ready: install it first" in done.message
    await queue.aclose()


async def test_recovery_after_a_crash(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    """A service that died left one run running (its snakemake still alive) and one queued."""
    cycle = await _cycle(sessions, tmp_path)
    leftover_events = tmp_path / "left.events.jsonl"
    leftover = _leftover_snakemake(leftover_events)
    try:
        stale = await _submit(
            sessions,
            cycle,
            "ok",
            state="running",
            pid=leftover.pid,
            started_at=utcnow(),
            events_path=str(leftover_events),
        )
        dead = await _submit(sessions, cycle, "ok", state="running", pid=2**22 + 7, started_at=utcnow())
        waiting = await _submit(sessions, cycle, "ok")
        published = Published()
        queue = _queue(sessions, tmp_path, published)
        await queue.recover()
        for run_id in (stale.id, dead.id):
            row = await _final(sessions, run_id, timeout_s=10)
            assert row.state == "interrupted"
            assert "service stopped" in row.message
        assert leftover.wait(timeout=5) == -signal.SIGTERM
        assert (await _final(sessions, waiting.id)).state == "succeeded"
        assert await _announced(published, stale.id, "cycle.run.failed") == ["cycle.run.failed"]
        await queue.aclose()
    finally:
        if leftover.poll() is None:
            os.killpg(leftover.pid, signal.SIGKILL)
            leftover.wait()


async def test_shutdown_interrupts_the_running_run(sessions: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    cycle = await _cycle(sessions, tmp_path)
    queue = _queue(sessions, tmp_path, Published())
    run = await _submit(sessions, cycle, "slow")
    queue.wake("c1")
    for _ in range(600):
        async with sessions() as session:
            current = await session.get(RunRow, run.id)
        if current is not None and current.pid:
            break
        await asyncio.sleep(0.05)
    assert current is not None and current.pid
    await queue.aclose()
    done = await _final(sessions, run.id, timeout_s=30)
    assert done.state == "interrupted"
    assert await _gone(current.pid)


async def test_interrupted_install_leaves_software_failed(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    cycle = await _cycle(sessions, tmp_path, installed=False)
    async with sessions() as session:
        row = await session.get(CycleRow, cycle.name)
        assert row is not None
        row.software = {"state": "installing"}
        session.add(row)
        await session.commit()
    install = queued_run(cycle.name, cycle.path, "t", {"reinstall": False})
    install.state, install.pid = "running", 2**22 + 9
    async with sessions() as session:
        session.add(install)
        await session.commit()
    published = Published()
    await _queue(sessions, tmp_path, published).recover()
    async with sessions() as session:
        after = await session.get(CycleRow, cycle.name)
    assert after is not None and after.software["state"] == "failed"
    assert published.types(install.id) == ["cycle.software.failed"]
