"""``/api/cycles/{name}/software``: install the cycle's pinned packages into its own environment."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from prodflow_core.identity import Manager, Reader
from prodflow_core.problems import conflict
from prodflow_core.sql import SessionDep

from prodflow_cycle_runner.deps import API, CycleDep, QueueDep, pending_runs, queued_run, run_out
from prodflow_cycle_runner.schemas import RunOut, SoftwareInstall

router = APIRouter(prefix=API, tags=["software"])


@router.post("/{name}/software", status_code=202)
async def install_software(
    cycle: CycleDep, identity: Manager, session: SessionDep, queue: QueueDep, body: SoftwareInstall | None = None
) -> RunOut:
    """Queue an install of ``pkg_versions`` (or the software checkouts) into the cycle's environment.

    The install is a run of kind ``install``: its log streams at ``.../runs/{id}/log``.
    """
    body = body or SoftwareInstall()
    if any(r.kind == "install" for r in await pending_runs(session, cycle.name)):
        raise conflict("an install of this cycle is already queued or running")
    run = queued_run(cycle.name, cycle.path, identity.user, {"reinstall": body.reinstall})
    session.add(run)
    await session.commit()
    queue.wake(cycle.name)
    return run_out(run)


@router.get("/{name}/software")
async def get_software(cycle: CycleDep, identity: Reader) -> dict[str, Any]:
    """The cycle's environment: state, path, requirements and the resolved version of every package."""
    return cycle.software
