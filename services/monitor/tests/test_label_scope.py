"""Which of a caller's experiments hold a label: remembered for ``ttl_s``, found answers only (real SQL)."""

from __future__ import annotations

from typing import Any

import pytest
from prodflow_core.counts import JobCounter
from prodflow_monitor.label_scope import LabelScopes
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _count(engine: AsyncEngine, kit: Any, label: str, experiment: str, runs: range) -> None:
    docs = [kit.job_doc(label, f"M-{experiment}", run, "site-a", experiment=experiment) for run in runs]
    await JobCounter(engine, "test").apply("data-production", [(doc["_id"], doc) for doc in docs])


async def test_an_answer_is_reused_for_ttl_then_read_again(engine: AsyncEngine, kit: Any) -> None:
    clock = Clock()
    scopes = LabelScopes(engine, ttl_s=5.0, clock=clock)
    await _count(engine, kit, "L", "snoplus", range(2))
    assert await scopes.experiments("L", ["legend", "snoplus"]) == ["snoplus"]

    await _count(engine, kit, "L", "legend", range(2, 4))  # the label now spans two experiments
    clock.now += 4.9
    assert await scopes.experiments("L", ["snoplus", "legend"]) == ["snoplus"]  # the same scope, remembered
    clock.now += 0.2
    assert await scopes.experiments("L", ["snoplus", "legend"]) == ["legend", "snoplus"]


async def test_a_label_not_found_is_asked_again_at_once(engine: AsyncEngine, kit: Any) -> None:
    scopes = LabelScopes(engine, ttl_s=60.0, clock=Clock())
    assert await scopes.experiments("N", None) == []
    await _count(engine, kit, "N", "snoplus", range(1))
    assert await scopes.experiments("N", None) == ["snoplus"]


async def test_each_scope_is_its_own_answer(engine: AsyncEngine, kit: Any) -> None:
    scopes = LabelScopes(engine, ttl_s=60.0, clock=Clock())
    await _count(engine, kit, "L", "snoplus", range(1))
    assert await scopes.experiments("L", None) == ["snoplus"]
    assert await scopes.experiments("L", ["legend"]) == []  # another experiment's caller never gets it
    assert await scopes.experiments("L", {"snoplus", "legend"}) == ["snoplus"]


async def test_the_oldest_answer_goes_first_and_ttl_0_remembers_nothing(engine: AsyncEngine, kit: Any) -> None:
    await _count(engine, kit, "A", "snoplus", range(1))
    await _count(engine, kit, "B", "snoplus", range(1, 2))
    scopes = LabelScopes(engine, ttl_s=60.0, capacity=1, clock=Clock())
    await scopes.experiments("A", None)
    await scopes.experiments("B", None)
    await _count(engine, kit, "A", "legend", range(2, 3))
    assert await scopes.experiments("A", None) == ["legend", "snoplus"]  # A was dropped to hold B: read again

    off = LabelScopes(engine, ttl_s=0, clock=Clock())
    assert await off.experiments("B", None) == ["snoplus"]
    await _count(engine, kit, "B", "legend", range(3, 4))
    assert await off.experiments("B", None) == ["legend", "snoplus"]
