"""``GET /api/cycles/files/provenance``: where a cycle file came from, down to the files no step made.

Registered before ``/api/cycles/{name}`` routes, so ``files`` is never taken for a cycle's name.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path, PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Query
from prodflow_core.experiment_scope import readable_experiments
from prodflow_core.identity import Identity, Reader
from prodflow_core.problems import FieldError, Problem
from prodflow_core.provenance.schema import Provenance
from prodflow_core.sql import SessionDep
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner import lineage
from prodflow_cycle_runner.deps import API
from prodflow_cycle_runner.models import CycleRow, FileRow

router = APIRouter(prefix=API, tags=["provenance"])
_ADLER32 = re.compile(r"^[0-9a-fA-F]{8}$")
MAX_MATCHES = 50


@router.get("/files/provenance", responses={404: {"description": "nothing is recorded of that file"}})
async def file_provenance(
    identity: Reader,
    session: SessionDep,
    path: Annotated[str | None, Query(max_length=4096, description="absolute, or relative to `cycle`")] = None,
    cycle: Annotated[str | None, Query(max_length=200)] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=1024, pattern=r"^[^/]+$", description="file name of a download")
    ] = None,
    adler32: Annotated[str | None, Query(pattern=_ADLER32.pattern, description="its adler32, 8 hex digits")] = None,
) -> Provenance:
    """A cycle file, the Snakemake step that made it, and every file of its chain (inputs recursively, each once),
    with the cycle's config.json SHA-256 and software pins.

    Ask with ``path`` (absolute, inside a cycle's folder; or relative to the folder of ``cycle``), or with ``name``
    and ``adler32`` (a downloaded file: matched across the caller's cycles, the newest record first).
    """
    _check(path, cycle, name, adler32)
    if path is not None:
        found = await _by_path(session, identity, path, cycle)
    else:
        assert name is not None and adler32 is not None
        found = await _by_checksum(session, identity, name, adler32.lower())
    if found is not None:
        answer = await lineage.provenance(session, found[0], found[1])
        if answer is not None:
            return answer
    asked = path if path is not None else f"{name} with adler32 {adler32}"
    raise Problem(404, "No provenance recorded", f"no cycle file {asked!r} is recorded", kind="not-found")


def _check(path: str | None, cycle: str | None, name: str | None, adler32: str | None) -> None:
    errors: list[FieldError] = []
    if path is not None and (name is not None or adler32 is not None):
        errors.append(FieldError(field="path", message="give either path or name and adler32", type="conflict"))
    elif path is None and (name is None or adler32 is None):
        errors.append(FieldError(field="path", message="give path, or name and adler32", type="missing"))
    if path is None and cycle is not None:
        errors.append(FieldError(field="cycle", message="only with a relative path", type="unexpected"))
    if path is not None and not os.path.isabs(path):
        if cycle is None:
            errors.append(FieldError(field="cycle", message="a relative path needs its cycle", type="missing"))
        if ".." in PurePosixPath(path).parts:
            errors.append(FieldError(field="path", message="must stay inside the cycle folder", type="unsafe"))
    if adler32 is not None and not _ADLER32.match(adler32):
        errors.append(FieldError(field="adler32", message="must be 8 hex digits", type="pattern"))
    if name is not None and ("/" in name or not name):
        errors.append(FieldError(field="name", message="a file name, without folders", type="pattern"))
    if errors:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        raise Problem(422, "Validation failed", detail, kind="validation", errors=errors)


async def _by_path(
    session: AsyncSession, identity: Identity, path: str, cycle_name: str | None
) -> tuple[CycleRow, str] | None:
    """The cycle and the path relative to its folder; a cycle the caller may not read is as good as none."""
    if cycle_name is not None and not os.path.isabs(path):
        cycle = await session.get(CycleRow, cycle_name)
        return (cycle, _normal(path)) if cycle is not None and _readable(cycle, identity) else None
    absolute = Path(_normal(path))
    parents = [str(p) for p in absolute.parents]
    query = select(CycleRow).where(col(CycleRow.path).in_(parents))
    if cycle_name is not None:
        query = query.where(CycleRow.name == cycle_name)
    for cycle in sorted((await session.exec(query)).all(), key=lambda c: -len(c.path)):
        if _readable(cycle, identity):
            return cycle, absolute.relative_to(cycle.path).as_posix()
    return None


async def _by_checksum(
    session: AsyncSession, identity: Identity, name: str, adler32: str
) -> tuple[CycleRow, str] | None:
    """The newest record of a file of that name and checksum in a cycle the caller may read."""
    query = (
        select(FileRow, CycleRow)
        .join(CycleRow, col(CycleRow.name) == col(FileRow.cycle))
        .where(FileRow.name == name, FileRow.adler32 == adler32)
    )
    experiments = readable_experiments(identity)
    if experiments is not None:
        query = query.where(col(CycleRow.experiment).in_(experiments))
    rows = (await session.exec(query.limit(MAX_MATCHES))).all()
    if not rows:
        return None
    row, cycle = max(rows, key=lambda r: (r[0].rule is not None, lineage.iso(r[0].recorded_at) or ""))
    return cycle, row.path


def _normal(path: str) -> str:
    """``path`` without ``.`` parts, doubled or trailing slashes (no file system access)."""
    return PurePosixPath(posixpath.normpath(path)).as_posix()


def _readable(cycle: CycleRow | None, identity: Identity) -> bool:
    return cycle is not None and identity.can_access(cycle.experiment)
