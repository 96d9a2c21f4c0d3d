"""``/metrics``: Prometheus metrics, job counts refreshed from the kept counts at each scrape."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prodflow_core.counts import database_status_counts
from prodflow_core.jobdocs import STATUSES
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from prodflow_monitor.deps import CountsDep, JobDatabases, MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def get_metrics(dbs: JobDatabases, counts_db: CountsDep, metrics: MetricsDep) -> Response:
    """Text exposition format; unauthenticated like every scrape target (counts only, no job data)."""
    kept = await database_status_counts(counts_db)
    for db in dbs:
        counts = kept.get(db.name, {})
        for status in STATUSES:
            metrics.jobs.labels(db.name, status).set(counts.get(status, 0))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
