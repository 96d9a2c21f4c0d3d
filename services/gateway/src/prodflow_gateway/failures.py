"""Failed authentications per client address: after too many in a window, the address waits (429)."""

from __future__ import annotations

import math
import time
from collections import deque


class AuthFailures:
    """Counts failed authentications per client address over a sliding window, in this process's memory.

    After ``limit`` failures within ``window_s`` an address is refused until the oldest of them leaves the window.
    Each gateway replica counts on its own, so N replicas behind a balancer allow up to N x ``limit``.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit = limit
        self._window_s = window_s
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str, now: float | None = None) -> int | None:
        """Seconds ``address`` must wait before trying again, or ``None`` if it may try now."""
        times = self._failures.get(address)
        if times is None:
            return None
        now = time.monotonic() if now is None else now
        self._expire(times, now)
        if not times:
            del self._failures[address]
            return None
        if len(times) < self._limit:
            return None
        return max(1, math.ceil(times[0] + self._window_s - now))

    def failed(self, address: str, now: float | None = None) -> None:
        """Count one failed authentication of ``address``."""
        now = time.monotonic() if now is None else now
        if len(self._failures) > 10_000:
            self._forget_quiet(now)
        times = self._failures.setdefault(address, deque(maxlen=self._limit))
        times.append(now)

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self._window_s:
            times.popleft()

    def _forget_quiet(self, now: float) -> None:
        for address in list(self._failures):
            self._expire(self._failures[address], now)
            if not self._failures[address]:
                del self._failures[address]
