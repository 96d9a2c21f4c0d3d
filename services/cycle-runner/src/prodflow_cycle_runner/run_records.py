"""What a run leaves in SQL and on the event stream: its row's fields, its end, the cycle's software state after
an install, and the ``cycle.run.*`` / ``cycle.software.*`` events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner.models import CycleRow, RunRow
from prodflow_cycle_runner.progress import brief

_log = logging.getLogger("prodflow.cycle_runner.runner")
Publish = Callable[[str, str, str, dict[str, Any]], Awaitable[None]]
"""``publish(short_type, subject, experiment, data)``."""
_RUN_EVENT = {"succeeded": "finished", "interrupted": "failed"}


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class RunRecords:
    """The rows of runs and cycles as a run goes, and the events that announce it."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], publish: Publish) -> None:
        self.sessions = sessions
        self.publish = publish

    async def get(self, run_id: str) -> RunRow:
        """The run's row as stored now."""
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
            assert run is not None
            return run

    async def update(self, run_id: str, **values: Any) -> None:
        """Set fields of the run's row (a run gone meanwhile is left alone)."""
        async with self.sessions() as session:
            run = await session.get(RunRow, run_id)
            if run is None:
                return
            for key, value in values.items():
                setattr(run, key, value)
            session.add(run)
            await session.commit()

    async def finish(
        self, run_id: str, state: str, code: int | None, message: str, progress: dict[str, Any] | None = None
    ) -> None:
        """End the run in ``state``, then announce it (an install that did not succeed leaves the software
        ``failed``)."""
        values: dict[str, Any] = {"state": state, "exit_code": code, "message": message, "finished_at": utcnow()}
        if progress is not None:
            values["progress"] = progress
        await self.update(run_id, **values)
        run = await self.get(run_id)
        if run.kind == "install":
            if state != "succeeded":
                await self.install_stopped(run.cycle, run.id, message)
            await self.announce(run, "installed" if state == "succeeded" else "failed")
        else:
            await self.announce(run, _RUN_EVENT.get(state, state))

    async def install_stopped(self, cycle_name: str, run_id: str, message: str) -> None:
        """An install that ended without finishing leaves the cycle's software ``failed`` (not ``installing``)."""
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, cycle_name)
            if cycle is None or cycle.software.get("state") != "installing":
                return
            cycle.software = {"state": "failed", "install_run": run_id, "error": message}
            session.add(cycle)
            await session.commit()

    async def set_software(self, cycle_name: str, software_state: dict[str, Any]) -> None:
        """Record the state of the cycle's software environment."""
        async with self.sessions() as session:
            cycle = await session.get(CycleRow, cycle_name)
            if cycle is None:
                return
            cycle.software = software_state
            session.add(cycle)
            await session.commit()

    async def announce(self, run: RunRow, what: str) -> None:
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
            "progress": brief(run.progress),
            "exit_code": run.exit_code,
            "message": run.message,
        }
        if run.kind == "install" and cycle is not None:
            data["packages"] = cycle.software.get("packages", {})
        try:
            await self.publish(short, run.id, experiment, data)
        except Exception:
            _log.warning("could not publish %s for %s", short, run.id, exc_info=True)
