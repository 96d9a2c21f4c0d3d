"""Sites: configured in a file and over the admin API, stored in SQL; each builds its compute backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from prodflow_core.backends import Backend, BackendError, backend_names, make_backend
from prodflow_core.problems import FieldError, Problem
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_submitter.models import SiteRow, utcnow
from prodflow_submitter.schemas import SiteFileEntry, SiteOut, SiteSpec
from prodflow_submitter.settings import SubmitterSettings

WORK_DIR_BACKENDS = frozenset({"local", "slurm", "dirac", "htcondor"})


def with_defaults(name: str, spec: SiteSpec, settings: SubmitterSettings) -> SiteSpec:
    """``spec`` with ``options.work_dir`` and ``options.output_root`` filled in where missing.

    Both end up in the stored site, so the monitor (which reads sites over the API) builds the same backend
    and finds outputs in the same place.
    """
    if spec.backend not in backend_names():
        known = f"known: {', '.join(backend_names())}"
        raise _refused("backend", f"unknown backend {spec.backend!r}", known, "unknown_backend")
    options = dict(spec.options)
    if spec.backend in WORK_DIR_BACKENDS:
        options.setdefault("work_dir", str(settings.backend_dir(name)))
    if spec.backend == "local":
        options.setdefault("max_running", spec.max_running)
    options.setdefault("output_root", str(settings.output_root(name)))
    try:
        make_backend(spec.backend, options)  # options it cannot run with are refused here, not at the first round
    except (BackendError, ValueError, TypeError) as exc:  # a check of the backend's, or int("many")
        raise _refused("options", f"options of a {spec.backend} site: {exc}", str(exc), "backend_options") from exc
    return spec.model_copy(update={"options": options})


def _refused(field: str, detail: str, message: str, error_type: str) -> Problem:
    """The 422 problem of a site spec whose ``field`` cannot be used."""
    error = FieldError(field=field, message=message, type=error_type)
    return Problem(422, "Validation failed", detail, kind="validation", errors=[error])


def site_out(row: SiteRow, counts: dict[str, int] | None = None) -> SiteOut:
    return SiteOut(**row.model_dump(exclude={"created_at", "updated_at"}), counts=counts or {})


def backend_of(row: SiteRow) -> Backend:
    """The compute backend of a site."""
    return make_backend(row.backend, row.options)


def output_root(row: SiteRow) -> Path:
    return Path(str(row.options["output_root"]))


async def get_site(session: AsyncSession, name: str) -> SiteRow | None:
    return await session.get(SiteRow, name)


async def list_sites(session: AsyncSession) -> list[SiteRow]:
    return list((await session.exec(select(SiteRow).order_by(SiteRow.name))).all())


async def put_site(
    session: AsyncSession, name: str, spec: SiteSpec, settings: SubmitterSettings, source: str = "api"
) -> tuple[SiteRow, bool]:
    """Create or replace a site (its drain state is kept); returns the row and whether it is new."""
    spec = with_defaults(name, spec, settings)
    row = await session.get(SiteRow, name)
    created = row is None
    if row is None:
        row = SiteRow(name=name, source=source, **spec.model_dump())
    else:
        for key, value in spec.model_dump().items():
            setattr(row, key, value)
        row.source = source
        row.updated_at = utcnow()
    session.add(row)
    await session.commit()
    return row, created


def read_sites_file(path: Path) -> list[SiteFileEntry]:
    """Sites from a YAML or JSON file: a list, or ``{"sites": [...]}``."""
    text = path.read_text()
    data: Any = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict):
        data = data.get("sites", [])
    return TypeAdapter(list[SiteFileEntry]).validate_python(data or [])


async def load_sites(sessions: async_sessionmaker[AsyncSession], settings: SubmitterSettings) -> list[str]:
    """Upsert the sites file's sites, and the embedded ``local`` site when there is no site at all."""
    loaded: list[str] = []
    async with sessions() as session:
        if settings.sites_file is not None:
            for entry in read_sites_file(settings.sites_file):
                await put_site(session, entry.name, SiteSpec(**entry.model_dump(exclude={"name"})), settings, "file")
                loaded.append(entry.name)
        if settings.embedded_local_site and not await list_sites(session):
            storage = f"file://{(settings.data_dir / 'storage').resolve()}"
            await put_site(session, "local", SiteSpec(backend="local", storage_element=storage, max_running=4),
                           settings, "embedded")  # fmt: skip
            loaded.append("local")
    return loaded
