"""``/api/catalog``: experiments, their modules (with command templates) and run lists; admins edit them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from prodflow_core.identity import Admin, Identity, Reader
from prodflow_core.problems import not_found
from prodflow_core.sql import SessionDep

from prodflow_request_api import catalog_store
from prodflow_request_api.catalog import EXPERIMENT_PATTERN, NAME_PATTERN, Module, ModuleSpec, runs_of
from prodflow_request_api.schemas import ExperimentIn, ExperimentOut, RunPage, RunsIn, RunsWritten

router = APIRouter(prefix="/api/catalog", tags=["catalog"])

ExperimentName = Annotated[str, Path(pattern=EXPERIMENT_PATTERN)]
ModuleName = Annotated[str, Path(pattern=NAME_PATTERN)]


async def _experiment(session: SessionDep, name: str, identity: Identity) -> ExperimentOut:
    identity.require_experiment(name)
    row = await catalog_store.experiment(session, name)
    if row is None:
        raise not_found("Experiment", name)
    _, total = await catalog_store.runs(session, name, limit=1)
    modules = list(await catalog_store.modules(session, name))
    return ExperimentOut(
        experiment=row.experiment,
        description=row.description,
        mailing_list=row.mailing_list,
        modules=modules,
        runs=total,
    )


@router.get("", summary="The experiments of the catalog the caller may see")
async def list_experiments(identity: Reader, session: SessionDep) -> list[ExperimentOut]:
    rows = await catalog_store.experiments(session)
    return [await _experiment(session, row.experiment, identity) for row in rows if identity.can_access(row.experiment)]


@router.get("/{experiment}", summary="One experiment: mailing list, module names, run count")
async def get_experiment(experiment: ExperimentName, identity: Reader, session: SessionDep) -> ExperimentOut:
    return await _experiment(session, experiment, identity)


@router.put(
    "/{experiment}",
    summary="Create or change an experiment (admin)",
    responses={201: {"model": ExperimentOut, "description": "Created"}},
)
async def put_experiment(
    experiment: ExperimentName, body: ExperimentIn, identity: Admin, session: SessionDep, response: Response
) -> ExperimentOut:
    identity.require_experiment(experiment)
    created = await catalog_store.put_experiment(
        session, experiment, body.description, [str(a) for a in body.mailing_list]
    )
    response.status_code = 201 if created else 200
    return await _experiment(session, experiment, identity)


@router.get("/{experiment}/modules", summary="The modules of an experiment")
async def list_modules(experiment: ExperimentName, identity: Reader, session: SessionDep) -> list[Module]:
    await _experiment(session, experiment, identity)
    specs = await catalog_store.modules(session, experiment)
    return [Module(experiment=experiment, name=name, **spec.model_dump()) for name, spec in specs.items()]


@router.get("/{experiment}/modules/{module}", summary="One module, with the command template its jobs run")
async def get_module(experiment: ExperimentName, module: ModuleName, identity: Reader, session: SessionDep) -> Module:
    identity.require_experiment(experiment)
    spec = await catalog_store.module(session, experiment, module)
    if spec is None:
        raise not_found("Module", f"{experiment}/{module}")
    return Module(experiment=experiment, name=module, **spec.model_dump())


@router.put(
    "/{experiment}/modules/{module}",
    summary="Create or replace a module (admin)",
    responses={201: {"model": Module, "description": "Created"}},
)
async def put_module(
    experiment: ExperimentName,
    module: ModuleName,
    spec: ModuleSpec,
    identity: Admin,
    session: SessionDep,
    response: Response,
) -> Module:
    await _experiment(session, experiment, identity)
    created = await catalog_store.put_module(session, experiment, module, spec)
    response.status_code = 201 if created else 200
    return Module(experiment=experiment, name=module, **spec.model_dump())


@router.delete("/{experiment}/modules/{module}", status_code=204, summary="Remove a module (admin)")
async def delete_module(experiment: ExperimentName, module: ModuleName, identity: Admin, session: SessionDep) -> None:
    identity.require_experiment(experiment)
    if not await catalog_store.delete_module(session, experiment, module):
        raise not_found("Module", f"{experiment}/{module}")


@router.get("/{experiment}/runs", summary="The run list, in run order, with detector-conditions tags")
async def list_runs(
    experiment: ExperimentName,
    identity: Reader,
    session: SessionDep,
    first: Annotated[int | None, Query(ge=1)] = None,
    last: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunPage:
    await _experiment(session, experiment, identity)
    items, total = await catalog_store.runs(session, experiment, first=first, last=last, limit=limit, offset=offset)
    return RunPage(items=items, total=total, limit=limit, offset=offset)


@router.put("/{experiment}/runs", summary="Add runs to the run list, or replace it (admin)")
async def put_runs(experiment: ExperimentName, body: RunsIn, identity: Admin, session: SessionDep) -> RunsWritten:
    await _experiment(session, experiment, identity)
    by_run = {run.run: run for run in runs_of(body.spans)}
    by_run.update({run.run: run for run in body.runs})
    written = await catalog_store.put_runs(
        session, experiment, [by_run[r] for r in sorted(by_run)], replace=body.replace
    )
    return RunsWritten(runs=written)


@router.delete("/{experiment}/runs/{run}", status_code=204, summary="Remove a run from the run list (admin)")
async def delete_run(
    experiment: ExperimentName, run: Annotated[int, Path(ge=1)], identity: Admin, session: SessionDep
) -> None:
    identity.require_experiment(experiment)
    if not await catalog_store.delete_run(session, experiment, run):
        raise not_found("Run", f"{experiment}/{run}")
