"""Helpers of the run-queue tests: a stand-in ``snakemake``, cycles in SQL, submitting and waiting for runs."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from prodflow_cycle_runner import config_json
from prodflow_cycle_runner.deps import queued_run
from prodflow_cycle_runner.models import CycleRow, RunRow
from prodflow_cycle_runner.processes import group_alive
from prodflow_cycle_runner.runner import RunQueue, utcnow
from prodflow_cycle_runner.settings import CycleRunnerSettings
from prodflow_cycle_runner.software import MARKER
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

Sessions = async_sessionmaker[AsyncSession]
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}
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
"""Targets: ``ok`` (3 quick steps), ``fail`` (fails at step 2), ``slow`` (a ``sleep 30`` child per step)."""


class Published(list[tuple[str, str, dict[str, Any]]]):
    """A ``publish`` that keeps what it was given."""

    async def __call__(self, short_type: str, subject: str, experiment: str, data: dict[str, Any]) -> None:
        self.append((short_type, subject, data))

    def types(self, subject: str) -> list[str]:
        """The event types published about ``subject``, in order."""
        return [t for t, s, _ in self if s == subject]


def stand_in_env(tmp_path: Path) -> Path:
    """An installed-looking environment whose ``bin/snakemake`` is the stand-in (one per test folder)."""
    env = tmp_path / "env"
    script = env / "bin" / "snakemake"
    if not script.exists():
        script.parent.mkdir(parents=True)
        script.write_text(STAND_IN.format(python=sys.executable))
        script.chmod(0o755)
        (env / MARKER).write_text(json.dumps({"built_at": "now", "packages": {}}))
    return env


async def make_cycle(sessions: Sessions, tmp_path: Path, name: str = "c1", installed: bool = True) -> CycleRow:
    """A cycle in SQL with its folder and config.json; its software is the stand-in (or not installed)."""
    folder = tmp_path / "production" / name
    folder.mkdir(parents=True)
    config_json.write(folder, config_json.default_config("l200", {}))
    software = {"state": "installed", "path": str(stand_in_env(tmp_path))} if installed else {"state": "none"}
    row = CycleRow(
        name=name,
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


async def submit(
    sessions: Sessions, cycle: CycleRow, target: str, cores: int = 1, executor: str = "local", **state: Any
) -> RunRow:
    """Queue a Snakemake run of ``target`` asking for ``cores`` (``state``: columns to set, e.g. a crash's)."""
    run = queued_run(
        cycle.name,
        cycle.path,
        "t",
        {"targets": [target], "cores": cores, "executor": executor, "options": []},
        kind="snakemake",
    )
    for key, value in state.items():
        setattr(run, key, value)
    async with sessions() as session:
        session.add(run)
        await session.commit()
    return run


async def get(sessions: Sessions, run_id: str) -> RunRow:
    """The run as stored now."""
    async with sessions() as session:
        run = await session.get(RunRow, run_id)
        assert run is not None
        return run


async def until(sessions: Sessions, run_id: str, check: Any, timeout_s: float = 30) -> RunRow:
    """The run once ``check(run)`` holds."""
    for _ in range(int(timeout_s / 0.05)):
        run = await get(sessions, run_id)
        if check(run):
            return run
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{run_id}: {run.state} {run.message!r}")


async def final(sessions: Sessions, run_id: str, timeout_s: float = 30) -> RunRow:
    """The run once it is final."""
    return await until(sessions, run_id, lambda r: r.state in FINAL, timeout_s)


async def announced(published: Published, run_id: str, short_type: str) -> list[str]:
    """The run's event types once ``short_type`` is among them (published just after the final state is stored)."""
    for _ in range(100):
        if short_type in published.types(run_id):
            break
        await asyncio.sleep(0.05)
    return published.types(run_id)


async def gone(pgid: int) -> bool:
    """True once no process of the group is left (the kernel may take a moment to reap it)."""
    for _ in range(100):
        if not group_alive(pgid):
            return True
        await asyncio.sleep(0.05)
    return False


def make_queue(sessions: Sessions, tmp_path: Path, published: Published, **settings: Any) -> RunQueue:
    """A run queue with fast progress and a short cancel grace (``settings``: more of them)."""
    values: dict[str, Any] = {"progress_interval_s": 0.0, "cancel_grace_s": 2.0, **settings}
    return RunQueue(sessions, CycleRunnerSettings(data_dir=tmp_path, **values), published)
