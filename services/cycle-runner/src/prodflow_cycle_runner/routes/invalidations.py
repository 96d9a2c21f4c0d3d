"""``/api/cycles/{name}/invalidate``: remove generated files so that the next run rebuilds them."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from prodflow_core.identity import Manager
from prodflow_core.problems import conflict
from prodflow_core.sql import SessionDep

from prodflow_cycle_runner import config_json, invalidation
from prodflow_cycle_runner.confinement import UnsafeInput, check_name
from prodflow_cycle_runner.deps import API, CycleDep, new_run_id, pending_runs, unsafe_problem
from prodflow_cycle_runner.schemas import InvalidationCreate, InvalidationOut
from prodflow_cycle_runner.targets import KEY_FIELDS, Selection, parse_target

router = APIRouter(prefix=API, tags=["reprocessing"])
SHOWN_FILES = 1000


@router.post("/{name}/invalidate")
async def invalidate(
    cycle: CycleDep, body: InvalidationCreate, identity: Manager, session: SessionDep, request: Request
) -> InvalidationOut:
    """Show (``dry_run``, the default) or remove the tier files, later-tier pars and ``.gen`` markers of a selection.

    Give a ``target`` (``all-l200-p03-r001-phy-dsp.gen``) or a ``tier`` with key fields (period, run, ...).
    """
    tier, selection = _selection(body)
    cycle_dir = Path(cycle.path)
    paths = config_json.paths_of(config_json.read(cycle_dir), cycle_dir, cycle.setup)
    try:
        plan = invalidation.plan(paths, cycle_dir, tier, selection)
    except ValueError as exc:
        raise unsafe_problem([UnsafeInput("tier", str(exc))]) from exc
    inv_id = new_run_id().replace("run-", "inv-")
    trash = cycle_dir / "generated" / "tmp" / "trash" / inv_id if body.trash else None
    if not body.dry_run:
        if await pending_runs(session, cycle.name):
            raise conflict("the cycle has queued or running runs; invalidate when they are done")
        invalidation.apply(plan, cycle_dir, trash)
        await request.app.state.publish(
            "cycle.invalidated",
            cycle.name,
            cycle.experiment,
            {
                "cycle": cycle.name,
                "invalidation": inv_id,
                "tiers": plan.tiers,
                "selection": selection.as_dict(),
                "count": len(plan.files),
                "bytes": plan.size,
                "by": identity.user,
            },
        )
    return InvalidationOut(
        id=inv_id,
        dry_run=body.dry_run,
        tiers=plan.tiers,
        selection=selection.as_dict(),
        count=len(plan.files),
        bytes=plan.size,
        files=plan.listing(cycle_dir, SHOWN_FILES),
        trash=str(trash.relative_to(cycle_dir)) if trash and not body.dry_run else None,
    )


def _selection(body: InvalidationCreate) -> tuple[str, Selection]:
    fields = {f: getattr(body, f) for f in KEY_FIELDS if getattr(body, f) is not None}
    problems = []
    for key, value in fields.items():
        try:
            check_name(value, key)
        except UnsafeInput as exc:
            problems.append(exc)
    if body.target is not None:
        target = parse_target(body.target)
        if target is None or fields or body.tier:
            problems.append(UnsafeInput("target", "give a .gen target alone, e.g. all-l200-p03-r001-phy-dsp.gen"))
        elif not problems:
            return target.tier, target.keys
    elif body.tier is None:
        problems.append(UnsafeInput("tier", "give a target or a tier"))
    if problems:
        raise unsafe_problem(problems)
    assert body.tier is not None
    return check_name(body.tier, "tier"), Selection(**fields)
