"""The core budget: Snakemake runs of different cycles share ``CYCLE_RUNNER_MAX_CORES`` cores.

Each cycle runs one run at a time (:class:`~prodflow_cycle_runner.runner.RunQueue`); before its Snakemake starts,
a run asks the budget for cores, and the ``-j`` it is given is fixed for its whole life (Snakemake cannot change it
while running). So the budget decides at the start of a run:

- Runs are let in first come, first served across cycles, in the order they became their cycle's next run
  (``waiting_since``, kept in SQL); none overtakes an earlier waiting one, so no cycle waits forever.
- A run starts as soon as a core is free and gets ``min(asked, fair share, free cores, total - reserved)``. The
  fair share is the max-min fair level of the cycles with a run running or waiting (cores held count as asked).
- No run takes more than ``total - reserved`` cores: the reserved ones are what another cycle's run finds free while
  one cycle's big run holds the rest, so a big run cannot make a small one of another cycle wait for its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Grant:
    """Cores given to a run, and why fewer than it asked for (empty if it got all)."""

    cores: int
    note: str = ""


@dataclass
class Ask:
    """A run of ``cycle`` waiting for ``cores``; ``since`` orders it among the others."""

    cycle: str
    run_id: str
    cores: int
    since: datetime
    grant: Grant | None = None


def fair_level(demands: list[int], total: int) -> int:
    """The max-min fair share of ``total`` among ``demands``: nobody gets more, who asks less keeps what it asks."""
    remaining, ordered = total, sorted(demands)
    for index, demand in enumerate(ordered):
        even = remaining // (len(ordered) - index)
        if demand >= even:
            return max(1, even)
        remaining -= demand
    return total


class CoreBudget:
    """The cores of the service's machine, shared by the runs of all cycles (one grant per cycle at a time)."""

    def __init__(self, total: int, reserved: int = 0) -> None:
        self.total = max(1, total)
        self.reserved = max(0, min(reserved, self.total - 1))
        self._held: dict[str, Ask] = {}
        self._waiting: list[Ask] = []
        self._changed = asyncio.Event()

    @property
    def per_run(self) -> int:
        """The most cores one run can get."""
        return self.total - self.reserved

    def in_use(self) -> int:
        """Cores held by running runs."""
        return sum(a.grant.cores for a in self._held.values() if a.grant)

    def holders(self) -> list[tuple[str, int]]:
        """(cycle, cores) of every run holding cores, biggest first."""
        held = [(a.cycle, a.grant.cores) for a in self._held.values() if a.grant]
        return sorted(held, key=lambda h: (-h[1], h[0]))

    def ask(self, cycle: str, run_id: str, cores: int, since: datetime) -> Ask:
        """Line up ``run_id`` (or find it in line) and let in whoever can start; a cycle's older ask is dropped."""
        for ask in self._waiting:
            if ask.run_id == run_id:
                return ask
        if run_id in self._held:
            return self._held[run_id]
        for stale in [a for a in (*self._waiting, *self._held.values()) if a.cycle == cycle]:
            self._drop(stale.run_id)
        ask = Ask(cycle, run_id, max(1, cores), since)
        self._waiting.append(ask)
        self._waiting.sort(key=lambda a: a.since)  # stable: equal times keep their arrival order
        self._admit()
        return ask

    def release(self, run_id: str) -> None:
        """Give back the cores of ``run_id``, or take it out of line if it is still waiting."""
        self._drop(run_id)
        self._admit()

    def waiting_reason(self, ask: Ask) -> str:
        """Why ``ask`` waits: who holds the cores, and how many runs are ahead of it."""
        who = ", ".join(f"cycle {cycle} ({cores})" for cycle, cores in self.holders()) or "nobody"
        text = f"waiting for cores: {self.in_use()} of {self.total} in use by {who}"
        ahead = next((i for i, a in enumerate(self._waiting) if a is ask), 0)
        return text + (f"; {ahead} run{'s' if ahead > 1 else ''} of other cycles ahead" if ahead else "")

    async def acquire(
        self,
        cycle: str,
        run_id: str,
        cores: int,
        since: datetime,
        *,
        waiting: Callable[[str], Awaitable[None]],
        cancel: asyncio.Event,
    ) -> Grant | None:
        """Wait for ``run_id``'s cores; ``waiting(reason)`` hears each new reason; ``None`` if ``cancel`` is set.

        If the waiting task is cancelled (the service stops), the run leaves the line and holds nothing.
        """
        ask = self.ask(cycle, run_id, cores, since)
        told = ""
        try:
            while ask.grant is None:
                reason = self.waiting_reason(ask)
                if reason != told:
                    told = reason
                    await waiting(reason)
                    continue  # the budget may have changed while the reason was stored
                if cancel.is_set():
                    self.release(run_id)
                    return None
                changed, cancelled = (asyncio.create_task(e.wait()) for e in (self._changed, cancel))
                try:
                    await asyncio.wait({changed, cancelled}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                    cancelled.cancel()
        except BaseException:
            self.release(run_id)
            raise
        return ask.grant

    def _drop(self, run_id: str) -> None:
        self._held.pop(run_id, None)
        self._waiting = [a for a in self._waiting if a.run_id != run_id]
        self._signal()

    def _admit(self) -> None:
        while self._waiting:
            head = self._waiting[0]
            grant = self._grant_for(head)
            if grant is None:
                return
            self._waiting.pop(0)
            head.grant = grant
            self._held[head.run_id] = head
            self._signal()

    def _grant_for(self, ask: Ask) -> Grant | None:
        free = self.total - self.in_use()
        if free < 1:
            return None
        demands = [a.grant.cores for a in self._held.values() if a.grant] + [a.cores for a in self._waiting]
        share = fair_level(demands, self.total)
        limits = {
            f"the fair share of {len(demands)} cycles": share,
            "the free cores": free,
            f"the most one run gets ({self.reserved} of {self.total} kept for other cycles)": self.per_run,
        }
        cores = min(ask.cores, *limits.values())
        if cores == ask.cores:
            return Grant(cores)
        why = next(name for name, limit in limits.items() if limit == cores)
        return Grant(cores, f"{cores} of the {ask.cores} cores asked: {why}")

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
