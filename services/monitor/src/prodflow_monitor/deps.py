"""Typed dependencies of the routes: the job databases and the metrics of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from prodflow_core.couch import CouchDatabase
from prodflow_core.counts import label_home
from prodflow_core.identity import Identity
from prodflow_core.problems import Problem
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_monitor.archive.runner import Archivist
from prodflow_monitor.followed import FollowedDocs
from prodflow_monitor.label_scope import LabelScopes
from prodflow_monitor.metrics import MonitorMetrics
from prodflow_monitor.provenance.peers import Peers
from prodflow_monitor.provenance.records import OutputRecords


async def _job_databases(request: Request) -> list[CouchDatabase]:
    dbs: list[CouchDatabase] = request.app.state.job_databases
    return dbs


async def _counts(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.counts_engine
    return engine


async def _label_scopes(request: Request) -> LabelScopes:
    scopes: LabelScopes = request.app.state.label_scopes
    return scopes


async def _metrics(request: Request) -> MonitorMetrics:
    metrics: MonitorMetrics = request.app.state.metrics
    return metrics


async def _archivist(request: Request) -> Archivist:
    archivist: Archivist = request.app.state.archivist
    return archivist


async def _output_records(request: Request) -> OutputRecords:
    records: OutputRecords = request.app.state.output_records
    return records


async def _peers(request: Request) -> Peers:
    peers: Peers = request.app.state.peers
    return peers


async def _followed_docs(request: Request) -> list[FollowedDocs]:
    followed: list[FollowedDocs] = request.app.state.followed_docs
    return followed


JobDatabases = Annotated[list[CouchDatabase], Depends(_job_databases)]
FollowedJobDocs = Annotated[list[FollowedDocs], Depends(_followed_docs)]
"""Each job database's documents as this replica last followed them (the rest read from CouchDB)."""
LabelScopesDep = Annotated[LabelScopes, Depends(_label_scopes)]
"""Which of a caller's experiments hold a label (remembered for a few seconds)."""
MetricsDep = Annotated[MonitorMetrics, Depends(_metrics)]
CountsDep = Annotated[AsyncEngine, Depends(_counts)]
"""The SQL database of the kept job counts (and of archived labels)."""
ArchivistDep = Annotated[Archivist, Depends(_archivist)]
RecordsDep = Annotated[OutputRecords, Depends(_output_records)]
"""The record of each registered output (which job attempt wrote it)."""
PeersDep = Annotated[Peers, Depends(_peers)]
"""submitter, request-api and cycle-runner, asked on behalf of the caller."""


def experiments_of(identity: Identity) -> set[str] | None:
    """The experiments an identity may read (``None`` = all)."""
    return None if "*" in identity.experiments else set(identity.experiments)


async def require_label(counts: AsyncEngine, label: str, identity: Identity) -> str | None:
    """The experiment of ``label`` (from the kept counts); 404 if no job has it, 403 if the caller may not read it."""
    return readable_home(await label_home(counts, label), label, identity)


def readable_home(found: tuple[str, str] | None, label: str, identity: Identity) -> str | None:
    """The experiment of ``found``, the ``(database, experiment)`` home of ``label``: as :func:`require_label`."""
    if found is None:
        raise Problem(404, "Not Found", f"no jobs with label {label!r}", kind="not-found")
    experiment = found[1] or None
    if experiment is not None:
        identity.require_experiment(experiment)
    return experiment
