"""Typed dependencies of the routes: the job databases and the metrics of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prodflow_core.couch import CouchDatabase
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem

from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.summary import label_experiment


def _job_databases(request: Request) -> list[CouchDatabase]:
    dbs: list[CouchDatabase] = request.app.state.job_databases
    return dbs


def _metrics(request: Request) -> MonitorMetrics:
    metrics: MonitorMetrics = request.app.state.metrics
    return metrics


JobDatabases = Annotated[list[CouchDatabase], Depends(_job_databases)]
MetricsDep = Annotated[MonitorMetrics, Depends(_metrics)]


def experiments_of(identity: Identity) -> set[str] | None:
    """The experiments an identity may read (``None`` = all)."""
    return None if "*" in identity.experiments else set(identity.experiments)


async def require_label(dbs: list[CouchDatabase], label: str, identity: Identity) -> str | None:
    """The experiment of ``label``; 404 if no job has it, 403 if the caller may not read it."""
    found = await label_experiment(dbs, label)
    if found is None:
        raise Problem(404, "Not Found", f"no jobs with label {label!r}", kind="not-found")
    experiment = found[1]
    if experiment is not None:
        identity.require_experiment(experiment)
    return experiment
