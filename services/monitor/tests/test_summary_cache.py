"""Label summaries: callers who ask at once share one reduce, a finished one is reused only for a short while."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prodflow_core.couch import CouchDatabase
from prodflow_monitor import summary
from prodflow_monitor.summary import SummaryCache


class FakeReduce:
    """Stands in for ``label_summary``: counts the reduces, each taking ``delay_s``; fails while ``fail``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0
        self.fail = False

    async def __call__(self, _dbs: Sequence[CouchDatabase], label: str) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("CouchDB did not answer")
        return {"label": label, "n": self.calls}


@pytest.fixture
def reduce(monkeypatch: pytest.MonkeyPatch) -> FakeReduce:
    fake = FakeReduce(delay_s=0.05)
    monkeypatch.setattr(summary, "label_summary", fake)
    return fake


async def test_callers_at_once_share_one_reduce_and_reuse_it_within_the_ttl(reduce: FakeReduce) -> None:
    cache = SummaryCache(ttl_s=0.3)
    first = await asyncio.gather(*(cache.get([], "L1") for _ in range(20)))
    assert reduce.calls == 1 and all(s == {"label": "L1", "n": 1} for s in first)
    assert (await cache.get([], "L1"))["n"] == 1  # within the ttl
    assert (await cache.get([], "L2"))["n"] == 2  # another label has its own
    await asyncio.sleep(0.35)
    assert (await cache.get([], "L1"))["n"] == 3  # past the ttl: computed anew


async def test_a_slow_reduce_is_reused_as_long_as_it_took(reduce: FakeReduce) -> None:
    reduce.delay_s = 0.3
    cache = SummaryCache(ttl_s=0.01)
    await cache.get([], "L1")
    await asyncio.sleep(0.1)
    assert (await cache.get([], "L1"))["n"] == 1 and reduce.calls == 1


async def test_ttl_zero_shares_only_a_reduce_in_progress(reduce: FakeReduce) -> None:
    cache = SummaryCache(ttl_s=0)
    await asyncio.gather(cache.get([], "L1"), cache.get([], "L1"))
    assert reduce.calls == 1
    await asyncio.sleep(0)  # the done callback has run
    await cache.get([], "L1")
    assert reduce.calls == 2


async def test_a_failed_reduce_is_not_reused_and_a_cancelled_caller_leaves_it_running(reduce: FakeReduce) -> None:
    cache = SummaryCache(ttl_s=10)
    reduce.fail = True
    with pytest.raises(RuntimeError):
        await cache.get([], "L1")
    reduce.fail = False
    impatient = asyncio.create_task(cache.get([], "L1"))
    await asyncio.sleep(0.01)
    impatient.cancel()
    assert (await cache.get([], "L1"))["n"] == 2 and reduce.calls == 2
