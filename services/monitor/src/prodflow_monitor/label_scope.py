"""Which of a caller's experiments hold a label, remembered for a few seconds: every ``GET /api/jobs?label=``
asks it before it reads a page, and the kept counts' answer rarely changes.

Only answers that found the label are remembered, so a label is listable as soon as its first jobs are counted.
What a remembered answer can miss is an experiment that got jobs of the same label after it was read (labels
rarely span experiments): its jobs appear in listings at most ``ttl_s`` later. An answer that names an
experiment whose jobs of the label are gone since costs a read of an empty range, and shows nothing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from prodflow_core.counts import label_experiments
from sqlalchemy.ext.asyncio import AsyncEngine

_Key = tuple[str, tuple[str, ...] | None]


class LabelScopes:
    """``(label, the caller's experiments)`` → the experiments among them that hold the label (newest answers
    kept, up to ``capacity``; each for ``ttl_s``; ``ttl_s`` 0 = always read)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        ttl_s: float = 5.0,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._clock = clock
        self._held: OrderedDict[_Key, tuple[float, list[str]]] = OrderedDict()

    async def experiments(self, label: str, experiments: Iterable[str] | None) -> list[str]:
        """The experiments among ``experiments`` (``None`` = all) that have counted jobs of ``label``, sorted."""
        key: _Key = (label, None if experiments is None else tuple(sorted(set(experiments))))
        now = self._clock()
        held = self._held.get(key)
        if held is not None and held[0] > now:
            return list(held[1])
        found = await label_experiments(self.engine, label, key[1])
        if found and self.ttl_s > 0:
            self._held[key] = (now + self.ttl_s, found)
            self._held.move_to_end(key)
            while len(self._held) > self.capacity:
                self._held.popitem(last=False)
        else:
            self._held.pop(key, None)
        return list(found)
