"""A cycle file's chain: the file, the step that made it, and its inputs recursively down to files no step made.

The walk reads the recorded rows by primary key, one query per level of the DAG (O(chain size) index lookups),
never a scan of the cycle's records. The cycle's configuration and software come from the snapshot the run that
made the asked file took when it started (:func:`run_snapshot`), or from the cycle as it is now.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prodflow_core.provenance.schema import (
    CycleFileNode,
    CycleFileProvenance,
    CycleProvenance,
    FileRecord,
    Provenance,
    SnakemakeStep,
    SoftwarePin,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner import config_json
from prodflow_cycle_runner.models import CycleRow, FileRow, RunRow

_CHUNK = 500


def run_snapshot(cycle: CycleRow) -> dict[str, Any]:
    """What a run runs with: the SHA-256 of config.json as it is now and every software pin of the cycle (the exact
    commit of each checkout, the resolved version of each package of its environment)."""
    cycle_dir = Path(cycle.path)
    config_bytes = (cycle_dir / "config.json").read_bytes()
    specs: dict[str, str] = {}
    try:
        _name, setup = config_json.setup_of(config_json.read(cycle_dir), cycle.setup)
        specs = {str(k).lower(): str(v) for k, v in setup.get("pkg_versions", {}).items()}
    except (KeyError, ValueError, StopIteration):
        pass
    pins = [
        SoftwarePin(name=name, kind="git", version=info.get("ref"), commit=info.get("commit"), source=info.get("url"))
        for name, info in sorted(cycle.checkouts.items())
    ]
    pins += [
        SoftwarePin(name=name, kind="package", version=str(version), source=specs.get(name.lower()))
        for name, version in sorted(cycle.software.get("packages", {}).items())
    ]
    return {
        "config_sha256": hashlib.sha256(config_bytes).hexdigest(),
        "pins": [p.model_dump(exclude_none=True) for p in pins],
        "environment": cycle.software.get("path"),
    }


async def chain(session: AsyncSession, cycle: str, path: str) -> list[FileRow]:
    """The row of ``path`` then every row of its inputs, recursively, each once (breadth first); empty if ``path``
    has no record."""
    first = await session.get(FileRow, (cycle, path))
    if first is None:
        return []
    rows, seen, level = [first], {path}, list(first.inputs)
    while level:
        wanted = [p for p in dict.fromkeys(level) if p not in seen]
        seen.update(wanted)
        found: dict[str, FileRow] = {}
        for start in range(0, len(wanted), _CHUNK):
            query = select(FileRow).where(FileRow.cycle == cycle, col(FileRow.path).in_(wanted[start : start + _CHUNK]))
            found.update({row.path: row for row in (await session.exec(query)).all()})
        level = []
        for p in wanted:
            row = found.get(p)
            if row is not None:
                rows.append(row)
                level.extend(row.inputs)
    return rows


async def provenance(session: AsyncSession, cycle: CycleRow, path: str) -> Provenance | None:
    """The answer for ``path`` of ``cycle``; ``None`` when nothing is recorded of it."""
    rows = await chain(session, cycle.name, path)
    if not rows:
        return None
    snapshot = await _snapshot(session, cycle, rows[0].run_id)
    nodes = [_node(row) for row in rows]
    return Provenance(
        kind="cycle-file",
        experiment=cycle.experiment,
        file=nodes[0].file,
        cycle_file=CycleFileProvenance(
            cycle=CycleProvenance(
                name=cycle.name,
                experiment=cycle.experiment,
                config_sha256=snapshot["config_sha256"],
                pins=[SoftwarePin.model_validate(p) for p in snapshot["pins"]],
            ),
            files=nodes,
        ),
    )


async def _snapshot(session: AsyncSession, cycle: CycleRow, run_id: str | None) -> dict[str, Any]:
    run = await session.get(RunRow, run_id) if run_id else None
    if run is not None and run.provenance:
        return run.provenance
    return run_snapshot(cycle)


def _node(row: FileRow) -> CycleFileNode:
    step = None
    if row.rule is not None and row.run_id is not None:
        step = SnakemakeStep(
            run_id=row.run_id,
            rule=row.rule,
            jobid=row.jobid,
            wildcards={str(k): str(v) for k, v in row.wildcards.items()},
            started_at=iso(row.started_at),
            finished_at=iso(row.finished_at),
        )
    record = FileRecord(
        name=row.name, path=row.path, size=row.size, adler32=row.adler32, recorded_at=iso(row.recorded_at)
    )
    return CycleFileNode(file=record, made_by=step, inputs=list(row.inputs))


def iso(moment: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC (SQLite gives them back naive)."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
