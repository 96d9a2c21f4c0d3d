"""Waiting in background loops: until one of several events is set, or a time has passed."""

from __future__ import annotations

import asyncio


async def first_of(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return as soon as any of ``events`` is set, or after ``timeout_s`` (``None``: no limit)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
