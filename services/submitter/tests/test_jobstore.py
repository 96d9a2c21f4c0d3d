"""Job documents in bulk (``prodflow_submitter.jobstore``), on a real CouchDB-API server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prodflow_core.testing import MakeDb
from prodflow_submitter import jobstore


def _jobs(n: int) -> Iterator[dict[str, Any]]:
    return ({"_id": f"job:L:M:{run}:0:p1", "type": "job", "status": "waiting"} for run in range(n))


async def test_a_campaign_is_created_in_chunks_that_grow_so_its_first_jobs_are_told_after_a_hundred(
    fresh_db: MakeDb,
) -> None:
    db = await fresh_db("jobstore")
    told: list[list[dict[str, Any]]] = []

    assert await jobstore.create_docs(db, _jobs(3000), 2000, told.append) == (3000, 0)

    # two chunks are in flight at once, so two neighbours may be told in either order
    assert sorted(len(chunk) for chunk in told) == [100, 200, 400, 800, 1500]
    assert min(len(chunk) for chunk in told[:2]) == 100
    assert all(doc["_rev"].startswith("1-") for chunk in told for doc in chunk)
    assert sorted(doc["_id"] for chunk in told for doc in chunk) == sorted(doc["_id"] for doc in _jobs(3000))

    told.clear()
    assert await jobstore.create_docs(db, _jobs(3000), 2000, told.append) == (0, 3000)  # a re-send creates nothing
    assert sum(len(chunk) for chunk in told) == 0
