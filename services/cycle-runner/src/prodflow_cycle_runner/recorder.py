"""Provenance records made as a run goes: each finished Snakemake job becomes one row per output file.

:class:`StepTracker` pairs the logger plugin's ``job_info`` (rule, wildcards, input and output paths) with its
``job_finished``: pure bookkeeping over plain dicts. :class:`FileRecorder` writes the finished steps: sizes and
adler32 are computed in a worker thread, then one transaction upserts the output rows (by cycle and path, the
newest maker winning), a row for each input no recorded step made, and the step itself. Rows are upserts, so
replaying a run's events file after a crash (:meth:`FileRecorder.replay`) adds what was missed and doubles nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prodflow_core.checksums import file_adler32
from prodflow_core.sql import upsert_into
from sqlalchemy import Table, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner.models import FileRow, StepRow
from prodflow_cycle_runner.progress import EventsTail

_log = logging.getLogger("prodflow.cycle_runner.recorder")
_ANNOTATION = re.compile(
    r" \((?:pipe|service|nodelocal|update|before update|access: [^)]*|cached|retrieve from storage"
    r"|only provide storage uri|send to storage|in storage)(?:, [^)]*)?\)$"
)
"""What Snakemake appends to a path in its log records (``x.lh5 (pipe)``)."""
_FILES: Table = FileRow.__table__  # type: ignore[attr-defined]
_STEPS: Table = StepRow.__table__  # type: ignore[attr-defined]
_CHUNK = 500


@dataclass(frozen=True)
class FinishedStep:
    """A Snakemake job that finished: what it ran and which files it read and wrote (paths as Snakemake gave)."""

    jobid: int
    rule: str
    wildcards: dict[str, str]
    inputs: list[str]
    outputs: list[str]
    started_at: datetime | None
    finished_at: datetime | None


@dataclass
class StepTracker:
    """Turns plugin events into :class:`FinishedStep` s."""

    _jobs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def feed(self, event: dict[str, Any]) -> FinishedStep | None:
        """Apply one event; a finished step when it is the ``job_finished`` of a job seen starting."""
        kind = event.get("event")
        if kind == "job_info":
            self._jobs[int(event.get("jobid", -1))] = event
        elif kind == "job_started":
            for jobid in event.get("jobs") or []:
                if isinstance(jobid, int) and jobid in self._jobs:
                    self._jobs[jobid] = {**self._jobs[jobid], "started": event.get("t")}
        elif kind == "job_finished":
            info = self._jobs.pop(int(event.get("jobid", -1)), None)
            if info is not None:
                return FinishedStep(
                    jobid=int(info.get("jobid", -1)),
                    rule=str(info.get("rule_name", "?")),
                    wildcards={str(k): str(v) for k, v in (info.get("wildcards") or {}).items()},
                    inputs=_paths(info.get("input")),
                    outputs=_paths(info.get("output")),
                    started_at=_time(info.get("started", info.get("t"))),
                    finished_at=_time(event.get("t")),
                )
        return None


def _paths(value: Any) -> list[str]:
    paths = [_ANNOTATION.sub("", str(p)) for p in (value or []) if p is not None]
    return list(dict.fromkeys(p for p in paths if p and p != "<TBD>"))


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if isinstance(value, int | float) else None


def cycle_path(raw: str, cycle_dir: Path) -> str:
    """A path as Snakemake gave it (relative to the cycle folder, where it runs, or absolute) as recorded: relative
    to the cycle folder when inside it, else absolute."""
    path = Path(os.path.normpath(raw if os.path.isabs(raw) else cycle_dir / raw))
    for base in dict.fromkeys((Path(os.path.normpath(cycle_dir)), cycle_dir.resolve())):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.as_posix()


@dataclass(frozen=True)
class _Stat:
    size: int | None
    adler32: str | None
    mtime_ns: int | None


def _measure(path: Path) -> _Stat:
    try:
        st = path.stat()
        if not path.is_file():
            return _Stat(None, None, st.st_mtime_ns)
        size, adler = file_adler32(path)
        return _Stat(size, adler, st.st_mtime_ns)
    except OSError:  # gone already (a temp() output) or unreadable
        return _Stat(None, None, None)


def _stat_only(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class FileRecorder:
    """Writes the finished steps of one cycle's runs into ``cycle_files`` and ``cycle_steps``."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], cycle: str, cycle_dir: Path) -> None:
        self.sessions = sessions
        self.cycle = cycle
        self.cycle_dir = cycle_dir

    async def record(self, run_id: str, steps: list[FinishedStep]) -> None:
        """Record ``steps`` of ``run_id`` (checksums in a worker thread, then one transaction)."""
        if not steps:
            return
        steps = [self._relative(s) for s in steps]
        made_now = {p for s in steps for p in s.outputs}
        inputs = sorted({p for s in steps for p in s.inputs} - made_now)
        async with self.sessions() as session:
            conn = await session.connection()
            known = await _known(conn, self.cycle, inputs)
            outputs, sources = await asyncio.to_thread(self._measure_all, steps, inputs, known)
            now = datetime.now(UTC)
            await _upsert_sources(conn, self.cycle, sources, now)
            await _upsert_outputs(conn, self.cycle, run_id, outputs, now)
            await session.commit()

    async def record_events(self, run_id: str, tracker: StepTracker, events: list[dict[str, Any]]) -> None:
        """Record the jobs ``events`` finish. A failed write is logged loudly, not fatal to the run: only the
        replay at the next start after a crash would make up for it."""
        steps = [step for event in events if (step := tracker.feed(event)) is not None]
        try:
            await self.record(run_id, steps)
        except Exception:
            _log.exception("could not record the files of %d finished jobs of run %s", len(steps), run_id)

    async def replay_interrupted(self, run_id: str, events_path: Path) -> None:
        """Record the finished jobs of an interrupted run that its follower had not recorded yet (logged)."""
        try:
            count = await self.replay(run_id, events_path)
        except Exception:
            _log.exception("could not replay the events of run %s", run_id)
            return
        if count:
            _log.info("recorded %d finished jobs of interrupted run %s from its events file", count, run_id)

    async def replay(self, run_id: str, events_path: Path) -> int:
        """Record the steps of a run's whole events file that are not recorded yet (after a crash); returns how many."""
        tracker, steps = StepTracker(), []
        for event in await asyncio.to_thread(EventsTail(events_path).read):
            step = tracker.feed(event)
            if step is not None:
                steps.append(step)
        async with self.sessions() as session:
            conn = await session.connection()
            done = set((await conn.execute(select(_STEPS.c.jobid).where(_STEPS.c.run_id == run_id))).scalars())
        missing = [s for s in steps if s.jobid not in done]
        await self.record(run_id, missing)
        return len(missing)

    def _measure_all(
        self, steps: list[FinishedStep], inputs: list[str], known: dict[str, dict[str, Any]]
    ) -> tuple[list[tuple[FinishedStep, list[tuple[str, _Stat]]]], list[tuple[str, _Stat]]]:
        """(step, [(path, stat) of each output]) and [(path, stat)] of the inputs to (re)record: those without a
        row, and those no step made whose size or mtime changed since."""
        outputs = [(s, [(p, _measure(self._abs(p))) for p in s.outputs]) for s in steps]
        sources = []
        for path in inputs:
            row = known.get(path)
            if row is not None and row["rule"] is not None:
                continue
            if row is not None and _stat_only(self._abs(path)) == (row["size"], row["mtime_ns"]):
                continue
            sources.append((path, _measure(self._abs(path))))
        return outputs, sources

    def _relative(self, step: FinishedStep) -> FinishedStep:
        def paths(raw: list[str]) -> list[str]:
            return list(dict.fromkeys(cycle_path(p, self.cycle_dir) for p in raw))

        return replace(step, inputs=paths(step.inputs), outputs=paths(step.outputs))

    def _abs(self, path: str) -> Path:
        return Path(path) if os.path.isabs(path) else self.cycle_dir / path


async def _known(conn: AsyncConnection, cycle: str, paths: list[str]) -> dict[str, dict[str, Any]]:
    """The rows of ``paths`` (rule, size, mtime) that exist: primary-key lookups."""
    c = _FILES.c
    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(paths), _CHUNK):
        query = select(c.path, c.rule, c.size, c.mtime_ns).where(
            c.cycle == cycle, c.path.in_(paths[start : start + _CHUNK])
        )
        for row in (await conn.execute(query)).mappings():
            out[row["path"]] = dict(row)
    return out


async def _upsert_sources(conn: AsyncConnection, cycle: str, sources: list[tuple[str, _Stat]], now: datetime) -> None:
    """Rows of inputs no recorded step made; never over a row of a file a step made."""
    if not sources:
        return
    rows: list[dict[str, Any]] = [
        {
            "cycle": cycle, "path": path, "name": _name(path), "size": st.size, "adler32": st.adler32,
            "mtime_ns": st.mtime_ns, "recorded_at": now, "wildcards": {}, "inputs": [],
        }
        for path, st in sources
    ]  # fmt: skip
    stmt = upsert_into(conn, _FILES)
    update = {k: stmt.excluded[k] for k in ("size", "adler32", "mtime_ns", "recorded_at")}
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["cycle", "path"], set_=update, where=_FILES.c.rule.is_(None)), rows
    )


async def _upsert_outputs(
    conn: AsyncConnection,
    cycle: str,
    run_id: str,
    outputs: list[tuple[FinishedStep, list[tuple[str, _Stat]]]],
    now: datetime,
) -> None:
    """The steps and their output rows; an output row is replaced unless a step that finished later made it."""
    files, steps = [], []
    for step, measured in outputs:
        steps.append(
            {
                "run_id": run_id, "jobid": step.jobid, "cycle": cycle, "rule": step.rule,
                "wildcards": step.wildcards, "inputs": step.inputs, "started_at": step.started_at,
                "finished_at": step.finished_at,
                "outputs": [{"path": p, "size": st.size, "adler32": st.adler32} for p, st in measured],
            }
        )  # fmt: skip
        for path, st in measured:
            files.append(
                {
                    "cycle": cycle, "path": path, "name": _name(path), "size": st.size, "adler32": st.adler32,
                    "mtime_ns": st.mtime_ns, "recorded_at": now, "run_id": run_id, "jobid": step.jobid,
                    "rule": step.rule, "wildcards": step.wildcards, "inputs": step.inputs,
                    "started_at": step.started_at, "finished_at": step.finished_at,
                }
            )  # fmt: skip
    stmt = upsert_into(conn, _STEPS)
    columns = [k for k in steps[0] if k not in ("run_id", "jobid")]
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=["run_id", "jobid"], set_={k: stmt.excluded[k] for k in columns}),
        steps,
    )
    if not files:
        return
    stmt = upsert_into(conn, _FILES)
    columns = [k for k in files[0] if k not in ("cycle", "path")]
    newer = or_(
        _FILES.c.finished_at.is_(None),
        stmt.excluded.finished_at.is_(None),
        _FILES.c.finished_at <= stmt.excluded.finished_at,
    )
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["cycle", "path"], set_={k: stmt.excluded[k] for k in columns}, where=newer
        ),
        files,
    )


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
