"""``/api/cycles``: create, list, show and edit production cycles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Request
from prodflow_core.experiment_scope import newest_first, readable_experiments, scoped
from prodflow_core.identity import Manager, Reader
from prodflow_core.problems import Problem, conflict
from prodflow_core.sql import SessionDep
from sqlmodel import select

from prodflow_cycle_runner import config_json, cycles
from prodflow_cycle_runner.allow_list import creation_refusals, patch_refusals, require_admin_for
from prodflow_cycle_runner.checkout import CheckoutFailed
from prodflow_cycle_runner.confinement import UnsafeInput
from prodflow_cycle_runner.deps import API, CycleDep, SettingsDep, cycle_out, pending_runs, unsafe_problem
from prodflow_cycle_runner.models import CycleRow
from prodflow_cycle_runner.run_records import utcnow
from prodflow_cycle_runner.schemas import CycleCreate, CycleOut

router = APIRouter(prefix=API, tags=["cycles"])


@router.post("", status_code=201)
async def create_cycle(
    body: CycleCreate, identity: Manager, session: SessionDep, settings: SettingsDep, request: Request
) -> CycleOut:
    """Create a cycle: its tree, config.json, and checkouts of the dataflow, metadata and software at their refs."""
    identity.require_experiment(body.experiment)
    problems = cycles.check_request(body, settings)
    if problems:
        raise unsafe_problem(problems)
    require_admin_for(creation_refusals(body, settings), identity)
    if await session.get(CycleRow, body.name) is not None:
        raise conflict(f"cycle {body.name!r} exists")
    try:
        made = await cycles.create(body, settings)
    except cycles.CycleExists as exc:
        raise conflict(f"{settings.root() / body.name} exists") from exc
    except CheckoutFailed as exc:
        raise Problem(422, "Checkout failed", str(exc), kind="checkout-failed") from exc
    row = CycleRow(
        name=body.name,
        experiment=body.experiment,
        setup=body.setup,
        path=str(made.path),
        created_at=utcnow(),
        created_by=identity.user,
        checkouts={name: c.as_dict() for name, c in made.checkouts.items()},
        software={"state": "none"},
        slurm=body.slurm.model_dump(exclude_none=True) if body.slurm else None,
    )
    session.add(row)
    await session.commit()
    await request.app.state.publish(
        "cycle.created", row.name, row.experiment, {"cycle": row.name, "path": row.path, "checkouts": row.checkouts}
    )
    return cycle_out(row, [])


@router.get("")
async def list_cycles(identity: Reader, session: SessionDep) -> list[CycleOut]:
    """Cycles of the caller's experiments, newest first (read at the index: never another experiment's rows)."""
    parts = scoped(select(CycleRow), CycleRow.experiment, readable_experiments(identity))
    rows = await newest_first(session, parts, CycleRow.created_at, limit=None)
    return [cycle_out(row, await pending_runs(session, row.name)) for row in rows]


@router.get("/{name}")
async def get_cycle(cycle: CycleDep, identity: Reader, session: SessionDep) -> CycleOut:
    """One cycle with its state, checkouts (exact commits) and software."""
    return cycle_out(cycle, await pending_runs(session, cycle.name))


@router.get("/{name}/config")
async def get_config(cycle: CycleDep, identity: Reader) -> dict[str, Any]:
    """The cycle's config.json."""
    return config_json.read(_dir(cycle))


@router.patch("/{name}")
async def patch_config(
    cycle: CycleDep,
    identity: Manager,
    session: SessionDep,
    settings: SettingsDep,
    patch: dict[str, Any] = Body(  # noqa: B008 - FastAPI's way to take a free-form JSON body
        ...,
        description="RFC 7396 merge patch of config.json",
        examples=[{"setups": {"l200": {"pkg_versions": {"pygama": "pygama==2.6.2"}}}}],
    ),
) -> dict[str, Any]:
    """Edit config.json values with a JSON merge patch; the result is validated before it is written."""
    if await pending_runs(session, cycle.name):
        raise conflict("the cycle has queued or running runs; edit its config when they are done")
    cycle_dir = _dir(cycle)
    updated: dict[str, Any] = config_json.merge_patch(config_json.read(cycle_dir), patch)
    problems = config_json.validate(updated, cycle_dir)
    if problems:
        raise unsafe_problem(problems)
    if cycle.setup not in updated["setups"]:
        raise unsafe_problem([UnsafeInput(f"setups.{cycle.setup}", "the cycle's setup cannot be removed")])
    before = config_json.read(cycle_dir)
    require_admin_for(patch_refusals(before, updated, settings), identity)
    config_json.write(cycle_dir, updated)
    if (
        _software_of(before, cycle.setup) != _software_of(updated, cycle.setup)
        and cycle.software.get("state") == "installed"
    ):
        cycle.software = {**cycle.software, "state": "outdated"}
        session.add(cycle)
        await session.commit()
    return updated


def _software_of(config: dict[str, Any], setup: str) -> tuple[Any, Any]:
    """What the environment is built from: the pins and the container prefix."""
    body = config["setups"].get(setup, {})
    return body.get("pkg_versions"), body.get("execenv")


def _dir(cycle: CycleRow) -> Path:
    return Path(cycle.path)
