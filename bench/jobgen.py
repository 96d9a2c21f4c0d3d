"""Job documents as the services write them, for benches that fill a job database directly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from prodflow_core.couch import CouchDatabase
from prodflow_core.couch.errors import CouchError
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import job_id, job_seed

MODULES = [f"Module{i}" for i in range(10)]
CHUNK = 2000
T = TypeVar("T")


def job_doc(n: int, status: str, site: str, label: str, campaign_id: str = "camp-000001") -> dict[str, Any]:
    """The ``n``-th job of ``label`` (10 modules, runs from 100000), in ``status`` at ``site``."""
    module, run = MODULES[n % len(MODULES)], 100000 + n // len(MODULES)
    doc_id = job_id(label, module, run, 0, 1)
    at = utc_now()
    return {
        "_id": doc_id, "type": "job", "experiment": "snoplus", "label": label, "module": module, "run": run,
        "chunk": 0, "pass": 1, "attempt": 1, "events": 1000, "seed": job_seed(doc_id), "site": site,
        "campaign_id": campaign_id, "backend": None, "status": status, "outputs": [],
        "history": [{"status": status, "at": at, "reason": ""}], "created_at": at, "updated_at": at,
    }  # fmt: skip


def finished_mix(n: int, label: str, site: str = "fast") -> Iterator[dict[str, Any]]:
    """``n`` jobs of a label that ran: nine in ten ``completed``, the rest ``failed``."""
    for i in range(n):
        yield job_doc(i, "completed" if i % 10 else "failed", site, label)


def realistic_mix(n: int, label: str) -> Iterator[dict[str, Any]]:
    """``n`` jobs of a label in mid-flight: 80% completed, 5% failed, 5% running, 5% submitted, 5% waiting."""
    statuses = ["completed"] * 16 + ["failed", "running", "submitted", "waiting"]
    for i in range(n):
        yield job_doc(i, statuses[i % len(statuses)], "fast" if i % 3 else "queued", label)


async def bulk_write(db: CouchDatabase, docs: list[dict[str, Any]], chunk: int = CHUNK) -> None:
    """``_bulk_docs`` of ``docs`` in chunks, one after another; every document must be written."""
    for offset in range(0, len(docs), chunk):
        results = await db.bulk_docs(docs[offset : offset + chunk])
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"{len(failed)} documents refused, e.g. {failed[0].id}: {failed[0].error}")


async def patiently(action: Callable[[], Awaitable[T]]) -> T:
    """``action`` (a view query), asked again while the server answers ``500 timeout``.

    CouchDB 3 gives up on a request after its ``fabric.request_timeout`` (60 s) while the index it waits for keeps
    building; the first query of a view over 100,000 documents on a busy machine can take longer than that.
    """
    while True:
        try:
            return await action()
        except CouchError as exc:
            if exc.status != 500 or exc.error != "timeout":
                raise
        await asyncio.sleep(1.0)
