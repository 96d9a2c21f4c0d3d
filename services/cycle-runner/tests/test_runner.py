"""The run queue with a stand-in ``snakemake`` (a small script that writes the logger plugin's events).

These tests cover queueing, throttled progress, failures, cancellation and recovery after a crash in seconds;
test_runs.py runs the real Snakemake.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from prodflow_cycle_runner.deps import queued_run
from prodflow_cycle_runner.models import CycleRow, RunRow
from prodflow_cycle_runner.processes import group_alive
from prodflow_cycle_runner.runner import utcnow
from queue_support import Published, Sessions, announced, final, gone, make_cycle, make_queue, submit


def _text(path: str) -> str:
    return Path(path).read_text()


def _leftover_snakemake(events: Path) -> subprocess.Popen[bytes]:
    """A process that looks like a run's snakemake (what a crashed service leaves behind)."""
    argv = [sys.executable, "-c", "import time; time.sleep(60)", "snakemake", "--logger-prodflow-events", str(events)]
    return subprocess.Popen(argv, start_new_session=True)


async def test_runs_in_order_with_progress(sessions: Sessions, tmp_path: Path) -> None:
    cycle = await make_cycle(sessions, tmp_path)
    published = Published()
    queue = make_queue(sessions, tmp_path, published)
    first, second = await submit(sessions, cycle, "ok"), await submit(sessions, cycle, "ok")
    queue.wake("c1")
    queue.wake("c1")
    done = [await final(sessions, r.id) for r in (first, second)]
    assert [r.state for r in done] == ["succeeded", "succeeded"]
    assert done[1].started_at is not None and done[0].finished_at is not None
    assert done[1].started_at >= done[0].finished_at
    assert done[0].progress["done"] == done[0].progress["total"] == 3
    assert done[0].message == "3 of 3 steps done"
    types = await announced(published, first.id, "cycle.run.finished")
    assert types[0] == "cycle.run.started" and types[-1] == "cycle.run.finished"
    log = _text(first.log_path)
    assert "--logger prodflow" in log and "3 of 3 steps done" in log
    await queue.aclose()


async def test_failure_is_reported(sessions: Sessions, tmp_path: Path) -> None:
    cycle = await make_cycle(sessions, tmp_path)
    published = Published()
    queue = make_queue(sessions, tmp_path, published)
    run = await submit(sessions, cycle, "fail")
    queue.wake("c1")
    done = await final(sessions, run.id)
    assert (done.state, done.exit_code) == ("failed", 1)
    assert done.progress["failures"][0]["rule"] == "step"
    assert "1 failed (step)" in done.message
    assert (await announced(published, run.id, "cycle.run.failed"))[-1] == "cycle.run.failed"
    assert published[-1][2]["progress"]["failed"] == 1
    await queue.aclose()


async def test_cancel_stops_the_process_group(sessions: Sessions, tmp_path: Path) -> None:
    cycle = await make_cycle(sessions, tmp_path)
    published = Published()
    queue = make_queue(sessions, tmp_path, published)
    run = await submit(sessions, cycle, "slow")
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
    done = await final(sessions, run.id, timeout_s=30)
    assert done.state == "cancelled"
    assert await gone(pid)  # the child `sleep` went with it
    assert (await announced(published, run.id, "cycle.run.cancelled"))[-1] == "cycle.run.cancelled"
    await queue.aclose()


def _text(path: str) -> str:
    return Path(path).read_text() if Path(path).exists() else ""


async def test_cancel_interrupts_a_slurm_run(sessions: Sessions, tmp_path: Path) -> None:
    """Snakemake cancels its Slurm jobs on SIGINT (Ctrl-C), not on SIGTERM: a Slurm run gets SIGINT first."""
    cycle = await make_cycle(sessions, tmp_path)
    queue = make_queue(sessions, tmp_path, Published())
    run = await submit(sessions, cycle, "slow", executor="slurm")
    queue.wake("c1")
    for _ in range(600):
        if "stand-in snakemake" in _text(run.log_path):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the stand-in is inside its `sleep 30` child now
    await queue.cancel(run.id)
    done = await final(sessions, run.id, timeout_s=30)
    assert done.state == "cancelled"
    log = _text(run.log_path)
    assert f"--slurm-jobname-prefix {run.id} --slurm-no-account" in log
    assert "KeyboardInterrupt" in log  # SIGINT, not SIGTERM or SIGKILL
    await queue.aclose()


async def test_software_must_be_installed(sessions: Sessions, tmp_path: Path) -> None:
    cycle = await make_cycle(sessions, tmp_path, installed=False)
    queue = make_queue(sessions, tmp_path, Published())
    run = await submit(sessions, cycle, "ok")
    queue.wake("c1")
    done = await final(sessions, run.id)
    assert done.state == "failed" and "software is not ready: install it first" in done.message
    await queue.aclose()


async def test_recovery_after_a_crash(sessions: Sessions, tmp_path: Path) -> None:
    """A service that died left one run running (its snakemake still alive) and one queued."""
    cycle = await make_cycle(sessions, tmp_path)
    leftover_events = tmp_path / "left.events.jsonl"
    leftover = _leftover_snakemake(leftover_events)
    try:
        stale = await submit(
            sessions,
            cycle,
            "ok",
            state="running",
            pid=leftover.pid,
            started_at=utcnow(),
            events_path=str(leftover_events),
        )
        dead = await submit(sessions, cycle, "ok", state="running", pid=2**22 + 7, started_at=utcnow())
        waiting = await submit(sessions, cycle, "ok")
        published = Published()
        queue = make_queue(sessions, tmp_path, published)
        await queue.recover()
        for run_id in (stale.id, dead.id):
            row = await final(sessions, run_id, timeout_s=10)
            assert row.state == "interrupted"
            assert "service stopped" in row.message
        assert leftover.wait(timeout=5) == -signal.SIGTERM
        assert (await final(sessions, waiting.id)).state == "succeeded"
        assert await announced(published, stale.id, "cycle.run.failed") == ["cycle.run.failed"]
        await queue.aclose()
    finally:
        if leftover.poll() is None:
            os.killpg(leftover.pid, signal.SIGKILL)
            leftover.wait()


async def test_shutdown_interrupts_the_running_run(sessions: Sessions, tmp_path: Path) -> None:
    cycle = await make_cycle(sessions, tmp_path)
    queue = make_queue(sessions, tmp_path, Published())
    run = await submit(sessions, cycle, "slow")
    queue.wake("c1")
    for _ in range(600):
        async with sessions() as session:
            current = await session.get(RunRow, run.id)
        if current is not None and current.pid:
            break
        await asyncio.sleep(0.05)
    assert current is not None and current.pid
    await queue.aclose()
    done = await final(sessions, run.id, timeout_s=30)
    assert done.state == "interrupted"
    assert await gone(current.pid)


async def test_interrupted_install_leaves_software_failed(sessions: Sessions, tmp_path: Path) -> None:
    cycle = await make_cycle(sessions, tmp_path, installed=False)
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
    await make_queue(sessions, tmp_path, published).recover()
    async with sessions() as session:
        after = await session.get(CycleRow, cycle.name)
    assert after is not None and after.software["state"] == "failed"
    assert published.types(install.id) == ["cycle.software.failed"]
