"""The gateway's event bell survives SSE clients that go away while they wait for it."""

from __future__ import annotations

import asyncio
import random
from typing import cast

import anyio
from prodflow_core.couch.client import CouchDatabase
from prodflow_gateway.events import EventBell


async def test_waiters_cancelled_from_outside_never_leave_the_bell_locked() -> None:
    # Starlette cancels a disconnected client's stream through an anyio cancel scope, which cancels it again at
    # every await; a wait that ran in a task of its own (asyncio.wait_for) was left behind holding the lock.
    bell = EventBell(db=cast(CouchDatabase, None))
    rng = random.Random(1)

    async def ringer() -> None:
        for _ in range(100_000):
            await bell.ring()
            await asyncio.sleep(rng.random() * 0.002)

    async def waiter() -> None:
        for _ in range(100_000):
            await bell.wait_past(bell.generation, 0.001)

    ringing = asyncio.create_task(ringer())
    try:
        for _ in range(300):
            async with anyio.create_task_group() as group:
                for _ in range(5):
                    group.start_soon(waiter)
                await asyncio.sleep(rng.random() * 0.01)
                group.cancel_scope.cancel()
    finally:
        ringing.cancel()
    assert not bell._changed.locked()
    await asyncio.wait_for(bell.ring(), 2)  # the relay's loop can still ring
