"""The one table every benchmark prints: a figure beside its baseline measured in the same run, as a ratio."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    """One measurement and the baseline it is compared with (ratio = value / baseline_value)."""

    name: str
    value: float
    unit: str
    baseline: str
    baseline_value: float

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("inf")


def timed(action: Callable[[], object], repeat: int = 3) -> float:
    """The best wall time of ``repeat`` runs of ``action``, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def nearest_rank(values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0..1) of ``values`` (NaN if there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def print_table(figures: Iterable[Figure], as_json: bool = False, server: str | None = None) -> None:
    """Print the figures as a table (or JSON lines for bench/run.py), headed by the CouchDB-API server they ran
    against when given (``bench/servers.py``: its description, never its URL); as JSON, ``{"server": ...}`` first."""
    rows = list(figures)
    if as_json:
        if server is not None:
            print(json.dumps({"server": server}))
        for row in rows:
            print(json.dumps({**asdict(row), "ratio": row.ratio}))
        return
    if server is not None:
        print(f"CouchDB-API server: {server}")
    print(f"{'figure':<62} {'value':>17} {'baseline':<38} {'baseline value':>17} {'ratio':>7}")
    for row in rows:
        print(
            f"{row.name:<62} {row.value:>10.4g} {row.unit:<6} {row.baseline:<38} {row.baseline_value:>10.4g} "
            f"{row.unit:<6} {row.ratio:>7.2f}"
        )
