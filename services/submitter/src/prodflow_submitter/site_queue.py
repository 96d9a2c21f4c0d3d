"""One site's waiting jobs, picked in the site's queue order without looking at every one of them.

A round used to choose the next jobs with ``heapq.nsmallest`` over all of the site's waiting jobs: with a
100,000-job campaign waiting, every round computed 100,000 sort keys, and rounds come as slots free up (a fifth
of the submitter's CPU under ``bench/load.py``, which answered no submitter request). A :class:`SiteQueue` keeps
a heap in the site's order beside the jobs: a round pops the few it takes, and an entry whose job left the queue
(claimed, cancelled, moved to another site) is dropped when it comes up. The heap is built again only when the
site's queue order changes, or when dropped entries outnumber the jobs.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

JobKey = tuple[str, str]
"""``(database, job id)``."""


@dataclass(frozen=True, slots=True, order=True)
class Waiting:
    """A waiting job as the queue sees it (one per waiting job: with slots, 72 bytes instead of ~200). Ordered
    only so that two heap entries of one job (one of them stale) compare without an error."""

    database: str
    job_id: str
    run: int
    priority: int
    arrival: int
    """The number of the campaign that made it: campaigns are numbered as they come, and their documents are
    created together, so this is the order jobs came in, known from the ledger as from the document."""


_POLICY_KEYS: dict[str, Callable[[Waiting], float]] = {
    "runlevel": lambda w: w.run,  # low runs first
    "newfirst": lambda w: -w.arrival,
    "priority": lambda w: -w.priority,  # larger first
    "serial": lambda w: w.arrival,  # first in, first out
}


def order_key(policies: Sequence[str]) -> Callable[[Waiting], tuple[Any, ...]]:
    """Sort key of a site's queue order; the job id breaks ties so the order is total."""
    keys = [_POLICY_KEYS[p] for p in policies]
    return lambda w: (*(k(w) for k in keys), w.job_id)


_Entry = tuple[tuple[Any, ...], str, Waiting]
"""A heap entry: the job's sort key and its database (which tie only for two entries of one job), the job."""


class SiteQueue(Mapping[JobKey, Waiting]):
    """A site's waiting jobs by ``(database, job id)``, and :meth:`first` of them in a queue order."""

    def __init__(self) -> None:
        self._jobs: dict[JobKey, Waiting] = {}
        self._heap: list[_Entry] = []
        self._order: tuple[str, ...] | None = None
        self._key: Callable[[Waiting], tuple[Any, ...]] | None = None

    def __getitem__(self, key: JobKey) -> Waiting:
        return self._jobs[key]

    def __iter__(self) -> Iterator[JobKey]:
        return iter(self._jobs)

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, job: Waiting, key: JobKey | None = None) -> None:
        """Queue ``job`` (or replace what was queued under its key). A caller that holds the job's key already
        passes it: one tuple per queued job, not two."""
        self._jobs[key or (job.database, job.job_id)] = job
        if self._key is not None:
            heapq.heappush(self._heap, (self._key(job), job.database, job))

    def discard(self, key: JobKey) -> None:
        """Take the job of ``key`` out of the queue, if it is in it."""
        self._jobs.pop(key, None)

    def first(self, count: int, order: Sequence[str]) -> list[Waiting]:
        """The first ``count`` jobs in ``order`` (policies, e.g. ``["priority", "serial"]``); they stay queued."""
        if tuple(order) != self._order or len(self._heap) > 2 * len(self._jobs) + 1_000:
            self._rebuild(tuple(order))
        chosen: list[_Entry] = []
        while self._heap and len(chosen) < count:
            entry = heapq.heappop(self._heap)
            job = entry[2]
            if self._jobs.get((job.database, job.job_id)) is job:
                chosen.append(entry)
        for entry in chosen:
            heapq.heappush(self._heap, entry)
        return [entry[2] for entry in chosen]

    def _rebuild(self, order: tuple[str, ...]) -> None:
        self._order, self._key = order, (key := order_key(order))
        self._heap = [(key(job), job.database, job) for job in self._jobs.values()]
        heapq.heapify(self._heap)
