"""``/metrics``: Prometheus metrics, job counts refreshed from the kept counts and database and view index sizes
read from CouchDB at each scrape (O(databases + design documents) small requests)."""

from __future__ import annotations

import asyncio
import logging

import httpx
from fastapi import APIRouter, Response
from prodflow_core.couch import CouchDatabase, CouchError
from prodflow_core.couch.compaction import StoreReading, read_stores
from prodflow_core.counts import database_status_counts
from prodflow_core.jobdocs import STATUSES
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from prodflow_monitor.deps import CountsDep, JobDatabases, MetricsDep

router = APIRouter(tags=["metrics"])
_log = logging.getLogger("prodflow.monitor.metrics")


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def get_metrics(dbs: JobDatabases, counts_db: CountsDep, metrics: MetricsDep) -> Response:
    """Text exposition format; unauthenticated like every scrape target (counts and sizes, no job data)."""
    kept = await database_status_counts(counts_db)
    for db in dbs:
        counts = kept.get(db.name, {})
        for status in STATUSES:
            metrics.jobs.labels(db.name, status).set(counts.get(status, 0))
    stores = await asyncio.gather(*(_stores(db) for db in dbs))
    metrics.show_stores(reading for readings in stores for reading in readings)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _stores(db: CouchDatabase) -> list[StoreReading]:
    """The sizes of ``db`` and its indexes; none (left out of the scrape) while its server fails."""
    try:
        return await read_stores(db)
    except (CouchError, httpx.HTTPError) as exc:
        _log.warning("sizes of %s unknown for this scrape: %s", db.name, exc)
        return []
