"""Python's cyclic garbage collector in a service process: full collections rare and short.

Under load a service has tens of requests in flight. CPython's default collects generation 0 every 700 new
container objects, so each of those collections finds the in-flight requests' objects alive and promotes them,
and once promotions reach a quarter of the long-lived heap a full collection runs over every object the process
holds: imports, the app, its caches. Under ``bench/load.py`` (300 req/s, 2 cores) the monitor ran one every
2 to 15 s, 100 to 170 ms each, and the gateway one every ~10 s, 135 to 285 ms each, collecting nothing. Each
stalled every request in flight: those stalls were the load's p99.

So once a service has started, what start-up built is frozen (never scanned again: it lives as long as the
process), and a generation-0 collection waits for :data:`GEN0_ALLOCATIONS` new objects, so far fewer short-lived
objects are promoted. Reference counting frees everything that is not in a cycle either way; cyclic garbage lives
until the next collection, a few tens of thousands of allocations later.
"""

from __future__ import annotations

import gc

GEN0_ALLOCATIONS = 50_000
"""New container objects between two generation-0 collections (CPython's default: 700)."""


def settle_after_startup() -> None:
    """Collect once, freeze every object alive, and make generation-0 collections rarer; once per process (a
    test process that starts many apps freezes only at the first)."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_ALLOCATIONS, gen1, gen2)
