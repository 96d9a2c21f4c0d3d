"""Typed dependencies of the routes: settings, the run queue, a cycle the caller may see, problems."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from prodflow_core.events import new_event_id
from prodflow_core.identity import Identity, current_identity
from prodflow_core.problems import FieldError, Problem, not_found
from prodflow_core.sql import SessionDep
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner.confinement import UnsafeInput
from prodflow_cycle_runner.models import CycleRow, RunRow
from prodflow_cycle_runner.run_records import utcnow
from prodflow_cycle_runner.runner import RunQueue
from prodflow_cycle_runner.schemas import CycleOut, RunOut
from prodflow_cycle_runner.settings import CycleRunnerSettings

API = "/api/cycles"


async def _settings(request: Request) -> CycleRunnerSettings:
    settings: CycleRunnerSettings = request.app.state.settings
    return settings


async def _queue(request: Request) -> RunQueue:
    queue: RunQueue = request.app.state.queue
    return queue


SettingsDep = Annotated[CycleRunnerSettings, Depends(_settings)]
QueueDep = Annotated[RunQueue, Depends(_queue)]


async def _cycle(name: str, session: SessionDep, identity: Annotated[Identity, Depends(current_identity)]) -> CycleRow:
    cycle = await session.get(CycleRow, name)
    if cycle is None:
        raise not_found("Cycle", name)
    identity.require_experiment(cycle.experiment)
    return cycle


CycleDep = Annotated[CycleRow, Depends(_cycle)]


def unsafe_problem(problems: Sequence[UnsafeInput]) -> Problem:
    """A 422 problem listing each refused value."""
    errors = [FieldError(field=p.field, message=p.message, type="unsafe") for p in problems]
    return Problem(
        422,
        "Validation failed",
        "; ".join(f"{e.field}: {e.message}" for e in errors),
        kind="validation",
        errors=errors,
    )


def new_run_id() -> str:
    """A sortable run id (``run-01J...``)."""
    return "run-" + new_event_id().removeprefix("evt-")


async def pending_runs(session: AsyncSession, cycle: str) -> list[RunRow]:
    """Queued and running runs of a cycle, oldest first."""
    rows = await session.exec(
        select(RunRow)
        .where(RunRow.cycle == cycle, col(RunRow.state).in_(("queued", "running")))
        .order_by(col(RunRow.created_at))
    )
    return list(rows.all())


def run_out(run: RunRow) -> RunOut:
    """The API form of a run."""
    base = f"{API}/{run.cycle}/runs/{run.id}"
    return RunOut(
        **run.model_dump(exclude={"pid", "cancel_requested", "log_path", "events_path"}),
        links={"self": base, "log": f"{base}/log", "cancel": f"{base}/cancel", "cycle": f"{API}/{run.cycle}"},
    )


def cycle_out(cycle: CycleRow, pending: Sequence[RunRow]) -> CycleOut:
    """The API form of a cycle with its state."""
    running = next((r for r in pending if r.state == "running"), None)
    software_state = cycle.software.get("state", "none")
    if running is not None:
        state = "installing" if running.kind == "install" else "running"
    elif any(r.waiting_since is not None for r in pending):
        state = "waiting"  # its next run waits for cores other cycles' runs hold
    else:
        state = {"installed": "ready", "failed": "software-failed"}.get(software_state, "created")
    base = f"{API}/{cycle.name}"
    return CycleOut(
        **cycle.model_dump(),
        state=state,
        active_run=running.id if running else None,
        queued_runs=sum(r.state == "queued" for r in pending),
        links={
            "self": base,
            "config": f"{base}/config",
            "software": f"{base}/software",
            "runs": f"{base}/runs",
            "invalidate": f"{base}/invalidate",
        },
    )


def queued_run(cycle: str, cycle_path: str, user: str, request: dict[str, Any], kind: str = "install") -> RunRow:
    """A new queued run; its log and plugin events go to ``generated/log/prodflow/`` in the cycle."""
    run_id = new_run_id()
    logs = Path(cycle_path) / "generated" / "log" / "prodflow"
    return RunRow(
        id=run_id,
        cycle=cycle,
        kind=kind,
        state="queued",
        request=request,
        requested_by=user,
        created_at=utcnow(),
        log_path=str(logs / f"{run_id}.log"),
        events_path=str(logs / f"{run_id}.events.jsonl"),
    )
