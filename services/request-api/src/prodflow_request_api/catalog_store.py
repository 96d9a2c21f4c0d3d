"""The catalog in SQL: seeding, reading and admin edits."""

from __future__ import annotations

from collections.abc import Sequence

from prodflow_core.events import utc_now
from sqlalchemy import ColumnElement, delete, func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_request_api.catalog import CatalogSeed, CatalogView, ModuleSpec, Run, runs_of
from prodflow_request_api.models import CatalogExperimentRow, CatalogModuleRow, CatalogRunRow

_CHUNK = 500  # rows per statement: keeps IN lists and bound parameters small on every database


async def seed_catalog(session: AsyncSession, seed: CatalogSeed) -> list[str]:
    """Add the experiments of ``seed`` that the database does not have yet; returns those added."""
    existing = set((await session.exec(select(CatalogExperimentRow.experiment))).all())
    added = []
    for experiment, content in seed.experiments.items():
        if experiment in existing:
            continue
        now = utc_now()
        session.add(
            CatalogExperimentRow(
                experiment=experiment,
                description=content.description,
                mailing_list=content.mailing_list,
                updated_at=now,
            )
        )
        await session.flush()
        for name, spec in content.modules.items():
            session.add(CatalogModuleRow(experiment=experiment, name=name, spec=_spec_json(spec), updated_at=now))
        await put_runs(session, experiment, runs_of(content.runs))
        added.append(experiment)
    await session.commit()
    return added


def _spec_json(spec: ModuleSpec) -> dict[str, object]:
    return spec.model_dump(mode="json")


async def experiments(session: AsyncSession) -> list[CatalogExperimentRow]:
    """Every experiment of the catalog, by name."""
    return list((await session.exec(select(CatalogExperimentRow).order_by(CatalogExperimentRow.experiment))).all())


async def experiment(session: AsyncSession, name: str) -> CatalogExperimentRow | None:
    """One experiment, or ``None``."""
    return await session.get(CatalogExperimentRow, name)


async def put_experiment(session: AsyncSession, name: str, description: str, mailing_list: list[str]) -> bool:
    """Create or change an experiment; returns True when it was created."""
    row = await session.get(CatalogExperimentRow, name)
    created = row is None
    if row is None:
        row = CatalogExperimentRow(experiment=name, mailing_list=[], updated_at=utc_now())
    row.description = description
    row.mailing_list = list(mailing_list)
    row.updated_at = utc_now()
    session.add(row)
    await session.commit()
    return created


async def modules(session: AsyncSession, name: str) -> dict[str, ModuleSpec]:
    """The modules of an experiment, by name."""
    rows = await session.exec(
        select(CatalogModuleRow).where(CatalogModuleRow.experiment == name).order_by(CatalogModuleRow.name)
    )
    return {row.name: ModuleSpec.model_validate(row.spec) for row in rows}


async def module(session: AsyncSession, name: str, module_name: str) -> ModuleSpec | None:
    """One module, or ``None``."""
    row = await session.get(CatalogModuleRow, (name, module_name))
    return None if row is None else ModuleSpec.model_validate(row.spec)


async def put_module(session: AsyncSession, name: str, module_name: str, spec: ModuleSpec) -> bool:
    """Create or replace a module; returns True when it was created."""
    row = await session.get(CatalogModuleRow, (name, module_name))
    created = row is None
    if row is None:
        row = CatalogModuleRow(experiment=name, name=module_name, spec={}, updated_at=utc_now())
    row.spec = _spec_json(spec)
    row.updated_at = utc_now()
    session.add(row)
    await session.commit()
    return created


async def delete_module(session: AsyncSession, name: str, module_name: str) -> bool:
    """Remove a module (requests already approved keep their jobs.json); False if it did not exist."""
    row = await session.get(CatalogModuleRow, (name, module_name))
    if row is None:
        return False
    await session.delete(row)
    await session.commit()
    return True


async def runs(
    session: AsyncSession,
    name: str,
    *,
    first: int | None = None,
    last: int | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> tuple[list[Run], int]:
    """A page of an experiment's runs in run order, and how many runs match."""
    where: list[ColumnElement[bool]] = [col(CatalogRunRow.experiment) == name]
    if first is not None:
        where.append(col(CatalogRunRow.run) >= first)
    if last is not None:
        where.append(col(CatalogRunRow.run) <= last)
    total = (await session.exec(select(func.count()).select_from(CatalogRunRow).where(*where))).one()
    rows = await session.exec(
        select(CatalogRunRow).where(*where).order_by(col(CatalogRunRow.run)).offset(offset).limit(limit)
    )
    return [Run(run=row.run, conditions=row.conditions) for row in rows], int(total)


async def put_runs(session: AsyncSession, name: str, new_runs: Sequence[Run], *, replace: bool = False) -> int:
    """Add runs (a run already listed takes the new conditions tag); ``replace`` drops the others first."""
    if replace:
        await session.exec(delete(CatalogRunRow).where(col(CatalogRunRow.experiment) == name))
    for start in range(0, len(new_runs), _CHUNK):
        chunk = new_runs[start : start + _CHUNK]
        if not replace:
            await session.exec(
                delete(CatalogRunRow).where(
                    col(CatalogRunRow.experiment) == name, col(CatalogRunRow.run).in_([r.run for r in chunk])
                )
            )
        await session.exec(
            insert(CatalogRunRow),
            params=[{"experiment": name, "run": r.run, "conditions": r.conditions} for r in chunk],
        )
    await session.commit()
    return len(new_runs)


async def delete_run(session: AsyncSession, name: str, run: int) -> bool:
    """Remove one run from the run list; False if it was not listed."""
    row = await session.get(CatalogRunRow, (name, run))
    if row is None:
        return False
    await session.delete(row)
    await session.commit()
    return True


async def catalog_view(
    session: AsyncSession, name: str, span: tuple[int, int] | None, mailing_lists: dict[str, list[str]]
) -> CatalogView | None:
    """What validating a request of ``name`` needs: its modules and the known runs within ``span``."""
    row = await session.get(CatalogExperimentRow, name)
    if row is None:
        return None
    known: dict[int, str] = {}
    if span is not None:
        result = await session.exec(
            select(CatalogRunRow.run, CatalogRunRow.conditions).where(
                CatalogRunRow.experiment == name, col(CatalogRunRow.run) >= span[0], col(CatalogRunRow.run) <= span[1]
            )
        )
        known = dict(result.all())
    mailing_list = mailing_lists.get(name, row.mailing_list)
    return CatalogView(name, await modules(session, name), known, tuple(mailing_list))
