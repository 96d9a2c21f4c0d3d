"""The core budget: its arithmetic alone, then with the run queue and the stand-in ``snakemake`` (seconds)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prodflow_cycle_runner.cores import CoreBudget, fair_level
from prodflow_cycle_runner.deps import cycle_out, pending_runs
from prodflow_cycle_runner.snakemake_cli import Invocation, argv, cores_needed, jobs_of
from queue_support import Published, Sessions, announced, final, get, make_cycle, make_queue, submit, until

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _text(path: str) -> str:
    return Path(path).read_text()


@pytest.mark.parametrize(
    ("demands", "total", "level"),
    [
        ([8], 8, 8),  # alone: all it asks
        ([6, 4], 8, 4),
        ([1, 1, 8], 8, 6),  # who asks little keeps it, the rest goes to the big one
        ([2, 1, 8], 8, 5),
        ([8, 8, 8], 8, 2),
        ([1, 1, 1], 8, 8),  # everybody fits: no limit
        ([5, 5, 5, 5, 5], 4, 1),  # never below one core
    ],
)
def test_fair_level(demands: list[int], total: int, level: int) -> None:
    assert fair_level(demands, total) == level


def test_a_big_run_leaves_the_reserved_cores_to_another_cycle() -> None:
    budget = CoreBudget(8, reserved=2)
    big = budget.ask("big", "r1", 8, _at(0))
    assert big.grant is not None and big.grant.cores == 6
    assert big.grant.note == "6 of the 8 cores asked: the most one run gets (2 of 8 kept for other cycles)"
    small = budget.ask("small", "r2", 3, _at(1))
    assert small.grant is not None and small.grant.cores == 2
    assert small.grant.note == "2 of the 3 cores asked: the free cores"
    late = budget.ask("late", "r3", 1, _at(2))
    assert late.grant is None
    assert budget.waiting_reason(late) == "waiting for cores: 8 of 8 in use by cycle big (6), cycle small (2)"


def test_first_come_first_served_across_cycles() -> None:
    budget = CoreBudget(4, reserved=0)
    budget.ask("a", "a1", 4, _at(0))
    b = budget.ask("b", "b1", 4, _at(2))
    c = budget.ask("c", "c1", 1, _at(1))  # asked earlier than b (e.g. lined up again after a restart)
    assert budget.waiting_reason(b).endswith("; 1 run of other cycles ahead")
    budget.release("a1")
    # b and c share what a gave back, fairly: c keeps its 1, b gets the 3 left (not its 4)
    assert c.grant is not None and c.grant.cores == 1
    assert b.grant is not None and b.grant.cores == 3
    assert b.grant.note == "3 of the 4 cores asked: the fair share of 2 cycles"


def test_a_small_run_does_not_overtake_a_waiting_one() -> None:
    budget = CoreBudget(4, reserved=0)
    budget.ask("a", "a1", 3, _at(0))
    budget.ask("b", "b1", 1, _at(1))
    waiting = budget.ask("c", "c1", 2, _at(2))
    later = budget.ask("d", "d1", 1, _at(3))
    budget.release("b1")  # one core free: the head of the line (c) takes it, d waits on
    assert waiting.grant is not None and waiting.grant.cores == 1
    assert later.grant is None


def test_a_cycle_has_one_place_in_line() -> None:
    budget = CoreBudget(2)
    budget.ask("a", "a1", 2, _at(0))
    budget.ask("b", "b1", 1, _at(1))
    budget.ask("b", "b2", 1, _at(2))  # b's worker moved on (b1 was cancelled): b1's place is given up
    assert [a.run_id for a in budget._waiting] == ["b2"]
    budget.release("a1")
    assert budget.holders() == [("b", 1)]


async def test_acquire_reports_waiting_and_leaves_the_line_when_cancelled() -> None:
    budget = CoreBudget(2)
    assert await budget.acquire("a", "a1", 2, _at(0), waiting=_never, cancel=asyncio.Event()) is not None
    reasons: list[str] = []

    async def waiting(reason: str) -> None:
        reasons.append(reason)

    cancel = asyncio.Event()
    task = asyncio.create_task(budget.acquire("b", "b1", 1, _at(1), waiting=waiting, cancel=cancel))
    await asyncio.sleep(0.05)
    assert reasons == ["waiting for cores: 2 of 2 in use by cycle a (2)"]
    cancel.set()
    assert await task is None
    assert budget._waiting == []
    stopped = asyncio.create_task(budget.acquire("c", "c1", 1, _at(2), waiting=waiting, cancel=asyncio.Event()))
    await asyncio.sleep(0.05)
    stopped.cancel()  # the service stops
    with pytest.raises(asyncio.CancelledError):
        await stopped
    assert budget._waiting == []
    budget.release("a1")
    assert budget.in_use() == 0


async def _never(reason: str) -> None:
    raise AssertionError(f"did not expect to wait: {reason}")


def test_slurm_runs_hold_one_core_and_keep_their_jobs() -> None:
    slurm = Invocation(["a.gen"], 50, "slurm", [])
    assert cores_needed(slurm) == 1 and jobs_of(slurm, 1) == 50
    args = argv(Path("/env/bin/snakemake"), slurm, cores=1)
    assert args[args.index("--cores") + 1] == "50"  # the cluster's limit per job, not the service's
    assert args[args.index("--local-cores") + 1] == "1"
    assert jobs_of(Invocation(["a.gen"], 50, "slurm", ["jobs=20"]), 1) == 20
    local = Invocation(["a.gen"], 4, "local", [])
    assert cores_needed(local) == 4 and jobs_of(local, 3) == 3
    args = argv(Path("/env/bin/snakemake"), local, cores=3)
    assert args[args.index("--cores") + 1] == "3" and "--local-cores" not in args


async def test_cycles_share_the_budget(sessions: Sessions, tmp_path: Path) -> None:
    """4 cores, 1 reserved: a big run of c1 gets 3, c2's run the last one; c3 waits, is cancelled; c4 waits, runs."""
    cycles = [await make_cycle(sessions, tmp_path, f"c{i}") for i in range(1, 5)]
    published = Published()
    queue = make_queue(sessions, tmp_path, published, max_cores=4)
    big = await submit(sessions, cycles[0], "slow", cores=4)
    queue.wake("c1")
    big_now = await until(sessions, big.id, lambda r: r.pid is not None)
    assert (big_now.state, big_now.cores_granted, big_now.jobs) == ("running", 3, 3)
    assert big_now.message.startswith("3 of the 4 cores asked: the most one run gets")
    small = await submit(sessions, cycles[1], "slow", cores=2)
    queue.wake("c2")
    small_now = await until(sessions, small.id, lambda r: r.pid is not None)
    assert (small_now.cores_granted, small_now.jobs) == (1, 1)
    assert "--cores 1 " in _text(small_now.log_path)

    cancelled, later = await submit(sessions, cycles[2], "ok"), await submit(sessions, cycles[3], "ok")
    queue.wake("c3")
    await until(sessions, cancelled.id, lambda r: r.message.startswith("waiting"))
    queue.wake("c4")
    waiting = await until(sessions, later.id, lambda r: r.message.startswith("waiting"))
    assert waiting.state == "queued" and waiting.waiting_since is not None
    async with sessions() as session:
        assert cycle_out(cycles[3], await pending_runs(session, "c4")).state == "waiting"
    assert waiting.message == (
        "waiting for cores: 4 of 4 in use by cycle c1 (3), cycle c2 (1); 1 run of other cycles ahead"
    )
    await queue.cancel(cancelled.id)
    gone = await final(sessions, cancelled.id)
    assert (gone.state, gone.started_at, gone.message) == ("cancelled", None, "cancelled before it started")
    assert await announced(published, cancelled.id, "cycle.run.cancelled") == ["cycle.run.cancelled"]
    head = "waiting for cores: 4 of 4 in use by cycle c1 (3), cycle c2 (1)"
    await until(sessions, later.id, lambda r: r.message == head)  # no longer behind c3's run

    await queue.cancel(small.id)  # gives its core back: c4's run starts and finishes while c1's still runs
    done = await final(sessions, later.id)
    assert (done.state, done.cores_granted) == ("succeeded", 1)
    assert (await get(sessions, big.id)).state == "running"
    await queue.cancel(big.id)
    assert (await final(sessions, big.id)).state == "cancelled"
    await queue.aclose()


async def test_waiting_runs_keep_their_place_over_a_restart(sessions: Sessions, tmp_path: Path) -> None:
    """Cycle b's run lines up before cycle a's (created earlier, and first by name): b still goes first after a
    restart."""
    cycles = [await make_cycle(sessions, tmp_path, name) for name in ("busy", "a", "b")]
    queue = make_queue(sessions, tmp_path, Published(), max_cores=1)
    busy = await submit(sessions, cycles[0], "slow")
    queue.wake("busy")
    await until(sessions, busy.id, lambda r: r.pid is not None)
    in_a, in_b = await submit(sessions, cycles[1], "ok"), await submit(sessions, cycles[2], "ok")
    queue.wake("b")
    await until(sessions, in_b.id, lambda r: r.message.startswith("waiting"))
    queue.wake("a")
    await until(sessions, in_a.id, lambda r: r.message.endswith("1 run of other cycles ahead"))
    await queue.aclose()  # the service stops: the running run is interrupted, the waiting ones stay queued
    assert (await final(sessions, busy.id)).state == "interrupted"
    for run_id in (in_a.id, in_b.id):
        stopped = await get(sessions, run_id)
        assert stopped.state == "queued" and stopped.message.startswith("waiting for cores")

    again = make_queue(sessions, tmp_path, Published(), max_cores=1)
    await again.recover()
    b_done, a_done = await final(sessions, in_b.id), await final(sessions, in_a.id)
    assert (b_done.state, a_done.state) == ("succeeded", "succeeded")
    assert b_done.finished_at is not None and a_done.started_at is not None
    assert a_done.started_at >= b_done.finished_at
    await again.aclose()
