"""The site queue order of the submission loop."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from prodflow_submitter import site_queue
from prodflow_submitter.site_queue import SiteQueue, Waiting, order_key


def _w(job_id: str, run: int, priority: int, arrival: int) -> Waiting:
    return Waiting("data-production", job_id, run, priority, arrival)


JOBS = [_w("a", 30, 0, 1), _w("b", 10, 5, 3), _w("c", 20, 5, 2), _w("d", 10, 0, 4)]


def _order(*policies: str) -> list[str]:
    return [w.job_id for w in sorted(JOBS, key=order_key(policies))]


def test_policies() -> None:
    assert _order("runlevel") == ["b", "d", "c", "a"]  # low runs first, ties by id
    assert _order("newfirst") == ["d", "b", "c", "a"]
    assert _order("serial") == ["a", "c", "b", "d"]
    assert _order("priority", "serial") == ["c", "b", "a", "d"]  # larger priority first, then FIFO
    assert _order("priority", "runlevel") == ["b", "c", "d", "a"]


def test_a_site_queue_picks_what_sorting_all_its_jobs_would() -> None:
    rng = random.Random(7)
    queue = SiteQueue()
    jobs: dict[tuple[str, str], Waiting] = {}
    orders = [("priority", "serial"), ("runlevel",), ("newfirst", "runlevel")]
    for step in range(3_000):
        roll = rng.random()
        if roll < 0.5 or not jobs:  # a job queued (sometimes again, as a re-delivered change does)
            job = Waiting(rng.choice(["data-production", "data-processing"]), f"job:{rng.randrange(800)}",
                          rng.randrange(5), rng.randrange(3), rng.randrange(4))  # fmt: skip
            queue.put(job)
            jobs[(job.database, job.job_id)] = job
        elif roll < 0.8:  # claimed, cancelled or moved away
            key = rng.choice(list(jobs))
            queue.discard(key)
            del jobs[key]
        else:
            order = orders[step % len(orders)]
            count = rng.randrange(1, 20)
            key = order_key(order)  # one job id in both databases: the database breaks the tie
            assert queue.first(count, order) == heapq.nsmallest(
                count, jobs.values(), key=lambda w: (key(w), w.database)
            )
    assert dict(queue) == jobs


def test_a_site_queue_picks_a_few_of_many_without_sorting_them_all(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def counting_order_key(policies: Sequence[str]) -> Callable[[Waiting], tuple[Any, ...]]:
        key = order_key(policies)

        def counted(job: Waiting) -> tuple[Any, ...]:
            nonlocal calls
            calls += 1
            return key(job)

        return counted

    monkeypatch.setattr(site_queue, "order_key", counting_order_key)
    queue = SiteQueue()
    for number in range(100_000):
        queue.put(Waiting("data-production", f"job:{number:06d}", number % 7, 0, 1))
    first = queue.first(8, ["runlevel"])
    assert calls == 100_000  # the heap of this order, built once
    for job in first:
        queue.discard((job.database, job.job_id))  # claimed
    queue.put(Waiting("data-production", "job:late", 0, 0, 2))
    taken = queue.first(8, ["runlevel"])
    assert calls == 100_001  # one key for the job queued since: a round looks at the few it takes
    assert [job.run for job in taken] == [0] * 8 and not {job.job_id for job in first} & {job.job_id for job in taken}


def test_a_job_queued_again_with_the_same_place_in_the_order_is_picked_once_as_last_queued() -> None:
    queue = SiteQueue()
    queue.put(Waiting("data-production", "job:a", 3, 0, 1))
    assert queue.first(1, ["runlevel"])[0].priority == 0  # the heap of this order is built
    for priority in (5, 1):  # the same run: each entry ties with the one before on its place in the order
        queue.put(Waiting("data-production", "job:a", 3, priority, 1))
    assert queue.first(2, ["runlevel"]) == [Waiting("data-production", "job:a", 3, 1, 1)]
