"""Job documents as the services write them, for benches that fill a job database directly, and jobs handed to a
real ``local`` backend the way submitter hands them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from prodflow_core.backends import BackendJob, BackendStatus, LocalBackend
from prodflow_core.couch import CouchDatabase
from prodflow_core.couch.errors import CouchError
from prodflow_core.events import utc_now
from prodflow_core.jobdocs import backend_job_name, job_id, job_output_dir, job_seed

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


async def submit_locally(
    db: CouchDatabase, site: dict[str, Any], docs: list[dict[str, Any]], command: str
) -> LocalBackend:
    """Hand ``docs`` to the site's local backend and record them ``submitted`` (submitter's two steps)."""
    backend = LocalBackend.from_options(site["options"])
    root = Path(site["options"]["output_root"])
    jobs = [
        BackendJob(name=backend_job_name(d), command=command, output_dir=job_output_dir(root, d["_id"])) for d in docs
    ]
    ids = await backend.submit(jobs)
    current = await db.get_many([d["_id"] for d in docs])
    at = utc_now()
    moved = []
    for doc, backend_id in zip(docs, ids, strict=True):
        fresh = current[doc["_id"]]
        moved.append({**fresh, "status": "submitted", "updated_at": at,
                      "backend": {"name": "local", "id": backend_id, "state": "PENDING", "checked_at": at},
                      "history": [*fresh["history"], {"status": "submitted", "at": at, "reason": ""}]})  # fmt: skip
    await db.bulk_docs(moved)
    return backend


async def backend_done(backend: LocalBackend, ids: list[str], timeout_s: float = 600) -> None:
    """Wait until the backend reports every job of ``ids`` completed (an assertion after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = await backend.status(ids)
        if all(s.state == BackendStatus.COMPLETED for s in states.values()):
            return
        assert time.monotonic() < deadline, "the backend did not finish the jobs"
        await asyncio.sleep(1.0)
