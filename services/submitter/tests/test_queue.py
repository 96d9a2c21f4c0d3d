"""The site queue order of the submission loop."""

from __future__ import annotations

from prodflow_submitter.queue import Waiting, order_key


def _w(job_id: str, run: int, priority: int, arrival: int) -> Waiting:
    return Waiting("data-production", job_id, run, priority, arrival)


JOBS = [_w("a", 30, 0, 1), _w("b", 10, 5, 3), _w("c", 20, 5, 2), _w("d", 10, 0, 4)]


def _order(*policies: str) -> list[str]:
    return [w.job_id for w in sorted(JOBS, key=order_key(policies))]


def test_policies() -> None:
    assert _order("runlevel") == ["b", "d", "c", "a"]  # low runs first, ties by id
    assert _order("newfirst") == ["d", "b", "c", "a"]
    assert _order("serial") == ["a", "c", "b", "d"]
    assert _order("priority", "serial") == ["c", "b", "a", "d"]  # larger priority first, then FIFO
    assert _order("priority", "runlevel") == ["b", "c", "d", "a"]
