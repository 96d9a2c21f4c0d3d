"""Waiting in background loops: until one of several events is set, or a time has passed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def first_of(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return as soon as any of ``events`` is set, or after ``timeout_s`` (``None``: no limit)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def unless_stopped(work: Awaitable[T], *stops: asyncio.Event) -> T | None:
    """``await work``, or ``None`` as soon as one of ``stops`` is set first (``work`` is then cancelled).

    For a wait a service must not sit out at shutdown: a ``_changes`` long poll holds its connection for up to
    its timeout (PouchDB Server: until a change comes).
    """
    task = asyncio.ensure_future(work)
    stopping = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        await asyncio.wait([task, *stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in stopping:
            wait.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None
