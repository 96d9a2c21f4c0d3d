"""``/api/cycles/{name}/software``: install the cycle's pinned packages into its own environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from prodflow_core.identity import Manager, Reader
from prodflow_core.problems import conflict
from prodflow_core.sql import SessionDep

from prodflow_cycle_runner import config_json, software
from prodflow_cycle_runner.deps import API, CycleDep, QueueDep, SettingsDep, pending_runs, queued_run, run_out
from prodflow_cycle_runner.environment import shell_environment
from prodflow_cycle_runner.schemas import EnvironmentOut, RunOut, SoftwareInstall

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


@router.get("/{name}/environment")
async def get_environment(cycle: CycleDep, identity: Reader, settings: SettingsDep) -> EnvironmentOut:
    """The cycle's software environment as variables: what its Snakemake runs get, plus legend-prodenv's
    ``PRODENV`` and ``PRODCYCLE``. 409 while the software is not installed (or its pins changed since)."""
    state = cycle.software.get("state", "none")
    env_dir = Path(cycle.software.get("path", ""))
    if state != "installed":
        why = "its pins changed; reinstall it" if state == "outdated" else "install it"
        raise conflict(f"the cycle's software is not installed (state {state}): {why} (POST .../software)")
    if not software.is_complete(env_dir):
        raise conflict(f"the cycle's environment {env_dir} is missing; reinstall it (POST .../software)")
    cycle_dir = Path(cycle.path)
    _name, setup = config_json.setup_of(config_json.read(cycle_dir), cycle.setup)
    shell = shell_environment(
        root=settings.root(), cycle_dir=cycle_dir, cycle=cycle.name, env_dir=env_dir, extra=settings.run_env
    )
    return EnvironmentOut(
        cycle=cycle.name,
        setup=cycle.setup,
        path=str(cycle_dir),
        env_path=str(env_dir),
        variables=shell.variables,
        path_prepend=shell.path_prepend,
        unset=shell.unset,
        execenv=config_json.execenv_prefix(setup),
        packages=cycle.software.get("packages", {}),
    )
