"""``/api/cycles/{name}/runs``: queue Snakemake runs, follow their progress and log, cancel them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from prodflow_core.identity import Manager, Reader
from prodflow_core.problems import not_found
from prodflow_core.sql import SessionDep
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from prodflow_cycle_runner.confinement import UnsafeInput, check_target
from prodflow_cycle_runner.deps import API, CycleDep, QueueDep, SettingsDep, queued_run, run_out, unsafe_problem
from prodflow_cycle_runner.models import FINAL_STATES, RunRow
from prodflow_cycle_runner.schemas import RunCreate, RunOut
from prodflow_cycle_runner.snakemake_cli import option_args

router = APIRouter(prefix=API, tags=["runs"])
CHUNK = 64 * 1024
POLL_S = 0.25


@router.post("/{name}/runs", status_code=202)
async def create_run(
    cycle: CycleDep, body: RunCreate, identity: Manager, session: SessionDep, queue: QueueDep, settings: SettingsDep
) -> RunOut:
    """Queue a Snakemake run of ``targets``; runs of one cycle execute one at a time, in order.

    Runs of different cycles run at once, sharing ``CYCLE_RUNNER_MAX_CORES``: a run may be granted fewer cores
    than it asks (``cores_granted``), or wait ``queued`` for free ones (its ``message`` says for whom). Asking a
    local run for more cores than the whole budget is refused (422).
    """
    problems: list[UnsafeInput] = []
    for i, target in enumerate(body.targets):
        try:
            check_target(target, Path(cycle.path), f"targets.{i}")
        except UnsafeInput as exc:
            problems.append(exc)
    try:
        option_args(body.options)
    except UnsafeInput as exc:
        problems.append(exc)
    if body.executor == "local" and body.cores > settings.max_cores:
        problems.append(UnsafeInput("cores", f"at most {settings.max_cores}: the cores all cycles' runs share"))
    if problems:
        raise unsafe_problem(problems)
    run = queued_run(cycle.name, cycle.path, identity.user, body.model_dump(), kind="snakemake")
    session.add(run)
    await session.commit()
    queue.wake(cycle.name)
    return run_out(run)


@router.get("/{name}/runs")
async def list_runs(
    cycle: CycleDep,
    identity: Reader,
    session: SessionDep,
    kind: str | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RunOut]:
    """Runs and installs of a cycle, newest first."""
    query = select(RunRow).where(RunRow.cycle == cycle.name)
    if kind:
        query = query.where(RunRow.kind == kind)
    if state:
        query = query.where(RunRow.state == state)
    rows = await session.exec(query.order_by(col(RunRow.created_at).desc()).limit(limit))
    return [run_out(r) for r in rows.all()]


@router.get("/{name}/runs/{rid}")
async def get_run(cycle: CycleDep, rid: str, identity: Reader, session: SessionDep) -> RunOut:
    """A run with its progress: jobs done / total, per-rule counts, failed jobs."""
    return run_out(await _run(session, cycle.name, rid))


@router.post("/{name}/runs/{rid}/cancel")
async def cancel_run(cycle: CycleDep, rid: str, identity: Manager, session: SessionDep, queue: QueueDep) -> RunOut:
    """Cancel a queued run, or stop a running one (its whole process group)."""
    await _run(session, cycle.name, rid)
    await queue.cancel(rid)
    session.expunge_all()
    return run_out(await _run(session, cycle.name, rid))


@router.get(
    "/{name}/runs/{rid}/log",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}, "text/event-stream": {}}}},
)
async def run_log(
    cycle: CycleDep,
    rid: str,
    identity: Reader,
    session: SessionDep,
    request: Request,
    follow: bool = False,
    offset: Annotated[int, Query(ge=0)] = 0,
    accept: Annotated[str, Header()] = "text/plain",
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The run's log from byte ``offset``; ``follow=true`` streams until the run ends.

    With ``Accept: text/event-stream`` the log comes as Server-Sent Events (``event: log``, one ``data:`` per
    line, ``id:`` = byte offset so ``Last-Event-ID`` resumes) ending with ``event: end``.
    """
    run = await _run(session, cycle.name, rid)
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    sse = "text/event-stream" in accept
    if sse and last_event_id and last_event_id.isdigit():
        offset = int(last_event_id)
    chunks = _chunks(Path(run.log_path), offset, follow or sse, sessions, rid)
    if sse:
        return StreamingResponse(
            _as_sse(chunks, sessions, rid),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return StreamingResponse(_plain(chunks), media_type="text/plain; charset=utf-8")


async def _run(session: AsyncSession, cycle: str, rid: str) -> RunRow:
    run = await session.get(RunRow, rid)
    if run is None or run.cycle != cycle:
        raise not_found("Run", rid)
    return run


async def _state(sessions: async_sessionmaker[AsyncSession], rid: str) -> str:
    async with sessions() as session:
        run = await session.get(RunRow, rid)
        return run.state if run else "cancelled"


async def _chunks(
    path: Path, offset: int, follow: bool, sessions: async_sessionmaker[AsyncSession], rid: str
) -> AsyncIterator[tuple[int, bytes]]:
    """(end offset, bytes) of the log from ``offset``; when following, until the run is final and read out."""
    while True:
        final = not follow or await _state(sessions, rid) in FINAL_STATES
        data = await asyncio.to_thread(_read, path, offset)
        while data:
            offset += len(data)
            yield offset, data
            data = await asyncio.to_thread(_read, path, offset)
        if final:
            return
        await asyncio.sleep(POLL_S)


def _read(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(CHUNK)
    except FileNotFoundError:
        return b""


async def _plain(chunks: AsyncIterator[tuple[int, bytes]]) -> AsyncIterator[bytes]:
    async for _end, data in chunks:
        yield data


async def _as_sse(
    chunks: AsyncIterator[tuple[int, bytes]], sessions: async_sessionmaker[AsyncSession], rid: str
) -> AsyncIterator[bytes]:
    """Whole lines as SSE messages; ``id`` is the offset just after the last line sent."""
    pending, end = b"", 0
    async for end, data in chunks:
        pending += data
        complete, newline, pending = pending.rpartition(b"\n")
        if newline:
            yield _message(end - len(pending), complete)
    if pending:
        yield _message(end, pending)
    state = await _state(sessions, rid)
    yield f"event: end\ndata: {json.dumps({'state': state})}\n\n".encode()


def _message(offset: int, data: bytes) -> bytes:
    lines = data.decode(errors="replace").split("\n")
    return (f"id: {offset}\nevent: log\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()
