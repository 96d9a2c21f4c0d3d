"""``/api/sites``: sites and their backends; drain and undrain (monitor only, submit nothing new)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from prodflow_core import jobdocs
from prodflow_core.counts import site_counts
from prodflow_core.identity import Admin, Manager, Reader
from prodflow_core.problems import conflict, not_found

from prodflow_submitter.models import SiteRow, utcnow
from prodflow_submitter.runtime import RuntimeDep
from prodflow_submitter.schemas import SITE_NAME, SiteOut, SiteSpec
from prodflow_submitter.sites import list_sites, put_site, site_out

router = APIRouter(prefix="/api/sites", tags=["sites"])
SiteName = Annotated[str, Path(pattern=SITE_NAME)]


async def _counts(runtime: RuntimeDep, name: str) -> dict[str, int]:
    """The site's jobs by status in both databases, from the kept counts."""
    return (await site_counts(runtime.counter.engine, [name])).get(name, {})


async def _row(runtime: RuntimeDep, name: str) -> SiteRow:
    async with runtime.sessions() as session:
        row = await session.get(SiteRow, name)
    if row is None:
        raise not_found("Site", name)
    return row


@router.get("", response_model=list[SiteOut])
async def get_sites(_identity: Reader, runtime: RuntimeDep) -> list[SiteOut]:
    """Every site with its backend options (monitor builds the same backends from them)."""
    async with runtime.sessions() as session:
        return [site_out(row) for row in await list_sites(session)]


@router.get("/{name}", response_model=SiteOut)
async def get_site(name: SiteName, _identity: Reader, runtime: RuntimeDep) -> SiteOut:
    """A site and its jobs counted by status (both databases)."""
    return site_out(await _row(runtime, name), await _counts(runtime, name))


@router.put("/{name}", response_model=SiteOut, responses={201: {"model": SiteOut, "description": "Created"}})
async def put_site_route(
    name: SiteName, body: SiteSpec, _identity: Admin, runtime: RuntimeDep, response: Response
) -> SiteOut:
    """Create or replace a site (its drain state is kept). Missing ``options.work_dir`` / ``output_root`` are filled."""
    async with runtime.sessions() as session:
        row, created = await put_site(session, name, body, runtime.settings)
    response.status_code = 201 if created else 200
    runtime.wake.set()
    return site_out(row)


@router.delete("/{name}", status_code=204)
async def delete_site(name: SiteName, _identity: Admin, runtime: RuntimeDep) -> Response:
    """Remove a site that has no jobs waiting or in flight."""
    counts = await _counts(runtime, name)
    busy = {s: n for s, n in counts.items() if s not in jobdocs.FINAL_STATUSES and n}
    if busy:
        raise conflict(f"site {name!r} still has jobs: {busy}", counts=busy)
    async with runtime.sessions() as session:
        row = await session.get(SiteRow, name)
        if row is None:
            raise not_found("Site", name)
        await session.delete(row)
        await session.commit()
    return Response(status_code=204)


async def _set_drained(runtime: RuntimeDep, name: str, drained: bool, by: str) -> SiteOut:
    async with runtime.sessions() as session:
        row = await session.get(SiteRow, name)
        if row is None:
            raise not_found("Site", name)
        newly = drained and not row.drained
        row.drained = drained
        row.updated_at = utcnow()
        session.add(row)
        await session.commit()
    runtime.wake.set()
    if newly:  # the support lists' digests report it (request-api follows site.drained)
        await runtime.events.emit(
            "site.drained", subject=name, data={"site": name, "by": by, "reason": f"drained by {by}"}
        )
    return site_out(row)


@router.post("/{name}/drain", response_model=SiteOut)
async def drain(name: SiteName, identity: Manager, runtime: RuntimeDep) -> SiteOut:
    """Submit nothing new to the site; jobs already there go on and are monitored (gasp_client --mononly).

    Announced as ``site.drained`` (the experiments' failure digests list it)."""
    return await _set_drained(runtime, name, True, identity.user)


@router.post("/{name}/undrain", response_model=SiteOut)
async def undrain(name: SiteName, identity: Manager, runtime: RuntimeDep) -> SiteOut:
    """Submit to the site again."""
    return await _set_drained(runtime, name, False, identity.user)
