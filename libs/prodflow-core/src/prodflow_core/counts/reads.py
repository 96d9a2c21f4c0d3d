"""Reading kept counts: each read costs O(modules x statuses) of what it asks about, never O(jobs).

The reads on a request's path (a summary, a job list) run statements built once, with bound parameters: building
and keying a statement per call cost as much CPU as running it (~0.6 of ~1.4 ms for a one-row read on SQLite).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from prodflow_core.counts.tables import CampaignCount, CountedJob, ExperimentCount, LabelCount, SiteCount

_LABELS: Table = LabelCount.__table__  # type: ignore[attr-defined]
_CAMPAIGNS: Table = CampaignCount.__table__  # type: ignore[attr-defined]
_SITES: Table = SiteCount.__table__  # type: ignore[attr-defined]
_EXPERIMENTS: Table = ExperimentCount.__table__  # type: ignore[attr-defined]
_LEDGER: Table = CountedJob.__table__  # type: ignore[attr-defined]

_L = _LABELS.c
LABEL_COUNTS = select(_L.database, _L.experiment, _L.module, _L.status, _L.jobs, _L.events).where(
    _L.label == bindparam("label"), _L.jobs > 0
)
"""The kept counts of the label bound as ``label`` (rows of no jobs left out); :func:`module_count` reads a row."""
_LABEL_HOME_ROWS = select(_L.database, _L.experiment).where(_L.label == bindparam("label"), _L.jobs > 0)
_LABEL_HOME = _LABEL_HOME_ROWS.order_by(_L.database).limit(1)
_LABEL_HOMES = _LABEL_HOME_ROWS.distinct()
_LABEL_EXPERIMENTS = select(_L.experiment).where(_L.label == bindparam("label"), _L.jobs > 0).distinct()
_LABEL_EXPERIMENTS_OF = _LABEL_EXPERIMENTS.where(_L.experiment.in_(bindparam("experiments", expanding=True)))
_LABEL_EXPERIMENTS_IN = _LABEL_EXPERIMENTS.where(_L.database == bindparam("database"))
_E = _EXPERIMENTS.c
_KNOWN_EXPERIMENTS = select(_E.experiment).where(_E.jobs > 0).distinct().order_by(_E.experiment)


@dataclass(frozen=True)
class ModuleCount:
    """Jobs and events of one (database, module, status) of a label."""

    database: str
    experiment: str
    module: str
    status: str
    jobs: int
    events: int


ModuleStats = dict[str, dict[str, dict[str, int]]]
"""``{module: {status: {"jobs": n, "events": e}}}``"""


async def label_counts(engine: AsyncEngine, label: str) -> list[ModuleCount]:
    """Every kept count of ``label``, in every database (rows of no jobs left out)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(LABEL_COUNTS, {"label": label})).all()
    return [module_count(row) for row in rows]


def module_count(row: Sequence[Any]) -> ModuleCount:
    """The count in a row of :data:`LABEL_COUNTS` (its first six columns)."""
    return ModuleCount(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), int(row[5]))


def home_of(counts: Iterable[ModuleCount]) -> tuple[str, str] | None:
    """``(database, experiment)`` of the label of ``counts`` (as :func:`label_home` reads it), or ``None``."""
    return min(((count.database, count.experiment) for count in counts), default=None)


def module_stats(counts: Iterable[ModuleCount], database: str | None = None) -> ModuleStats:
    """``counts`` (of one ``database``, or all summed) in the shape of a ``_stats`` reduce per module."""
    out: ModuleStats = defaultdict(dict)
    for count in counts:
        if database is not None and count.database != database:
            continue
        held = out[count.module].setdefault(count.status, {"jobs": 0, "events": 0})
        held["jobs"] += count.jobs
        held["events"] += count.events
    return dict(out)


async def label_status_counts(engine: AsyncEngine, database: str, label: str) -> dict[str, int]:
    """``{status: jobs}`` of ``label`` in ``database``."""
    c = _LABELS.c
    query = select(c.status, func.sum(c.jobs)).where(c.database == database, c.label == label).group_by(c.status)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {str(status): int(jobs) for status, jobs in rows if jobs}


_LABEL_NAMES_AFTER = (
    select(_L.label)
    .where(
        _L.database == bindparam("database"),
        _L.experiment == bindparam("experiment"),
        _L.label > bindparam("after"),
        _L.jobs > 0,
    )
    .distinct()
    .order_by(_L.label)
    .limit(bindparam("limit"))
)
_LABELS_AFTER = (
    select(_L.label, _L.status, func.sum(_L.jobs))
    .where(
        _L.database == bindparam("database"),
        _L.experiment == bindparam("experiment"),
        _L.label.in_(_LABEL_NAMES_AFTER.scalar_subquery()),
    )
    .group_by(_L.label, _L.status)
)


async def labels_after(
    engine: AsyncEngine, database: str, experiment: str, after: str, limit: int
) -> list[tuple[str, dict[str, int]]]:
    """The first ``limit`` labels of ``experiment`` in ``database`` whose names sort after ``after`` (``""``: from
    the first), by name, each with ``{status: jobs}``: one page of the label list, read from the ``(experiment,
    label)`` index from ``after`` on, O(limit x modules x statuses) rows whatever the number of labels."""
    values = {"database": database, "experiment": experiment, "after": after, "limit": limit}
    async with engine.connect() as conn:
        rows = (await conn.execute(_LABELS_AFTER, values)).all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for label, status, jobs in rows:
        if jobs:
            out[str(label)][str(status)] = int(jobs)
    return sorted(out.items())


async def label_home(engine: AsyncEngine, label: str) -> tuple[str, str] | None:
    """``(database, experiment)`` of a label that has counted jobs, or ``None``."""
    async with engine.connect() as conn:
        row = (await conn.execute(_LABEL_HOME, {"label": label})).first()
    return None if row is None else (str(row[0]), str(row[1]))


async def label_experiments(engine: AsyncEngine, label: str, experiments: Iterable[str] | None) -> list[str]:
    """The experiments among ``experiments`` (``None`` = all) that have counted jobs of ``label``.

    Read from the counts' ``(experiment, label)`` index: for a caller's experiments, another experiment's label
    finds nothing without reading any of that experiment's rows.
    """
    values: dict[str, Any] = {"label": label}
    query = _LABEL_EXPERIMENTS
    if experiments is not None:
        query, values["experiments"] = _LABEL_EXPERIMENTS_OF, sorted(experiments)
    async with engine.connect() as conn:
        return sorted(str(experiment) for experiment in (await conn.execute(query, values)).scalars())


async def campaign_counts(engine: AsyncEngine, campaign_id: str) -> dict[str, int]:
    """``{status: jobs}`` of a campaign, summed over owners and databases."""
    c = _CAMPAIGNS.c
    query = select(c.status, func.sum(c.jobs)).where(c.campaign_id == campaign_id).group_by(c.status)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {str(status): int(jobs) for status, jobs in rows if jobs}


async def site_counts(engine: AsyncEngine, sites: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """``{site: {status: jobs}}``, summed over owners and databases (``None`` = every site)."""
    c = _SITES.c
    query = select(c.site, c.status, func.sum(c.jobs)).group_by(c.site, c.status)
    if sites is not None:
        query = query.where(c.site.in_(sorted(sites)))
    return await _by_status(engine, query)


def count_differences(kept: ModuleStats, reduced: ModuleStats) -> list[dict[str, object]]:
    """Every (module, status) whose kept jobs or events differ from a full reduce's (empty: they agree)."""
    out: list[dict[str, object]] = []
    for module in sorted(set(kept) | set(reduced)):
        mine, theirs = kept.get(module, {}), reduced.get(module, {})
        for status in sorted(set(mine) | set(theirs)):
            a = mine.get(status, {"jobs": 0, "events": 0})
            b = theirs.get(status, {"jobs": 0, "events": 0})
            if a != b:
                out.append({"module": module, "status": status, "kept": a, "reduced": b})
    return out


async def database_status_counts(engine: AsyncEngine) -> dict[str, dict[str, int]]:
    """``{database: {status: jobs}}`` of every kept label (the ``/metrics`` gauges), summed over owners and
    experiments: O(owners x databases x experiments x statuses) rows, whatever the number of labels."""
    c = _EXPERIMENTS.c
    return await _by_status(engine, select(c.database, c.status, func.sum(c.jobs)).group_by(c.database, c.status))


async def jobs_in_statuses(engine: AsyncEngine, database: str, statuses: Iterable[str]) -> list[str]:
    """Ids of the counted jobs of ``database`` whose status is one of ``statuses`` (by the ledger's index).

    As of the counts' checkpoint: O(matching jobs), and no wait for a CouchDB index.
    """
    c = _LEDGER.c
    query = select(c.doc_id).where(c.database == database, c.status.in_(sorted(statuses)))
    async with engine.connect() as conn:  # sorted here, as in label_jobs
        return sorted(str(doc_id) for doc_id in (await conn.execute(query)).scalars())


async def label_jobs(
    engine: AsyncEngine,
    database: str,
    label: str,
    statuses: Iterable[str] | None = None,
    campaign_id: str | None = None,
) -> list[tuple[str, str]]:
    """``(doc_id, status)`` of the counted jobs of ``label`` in ``database`` (those in ``statuses``, of
    ``campaign_id``), sorted by id; as of the counts' checkpoint.

    O(the label's jobs), by the ledger's ``(database, experiment, label, status)`` index: for what covers a whole
    label (an operation on its jobs, its .exactly, the grabber), never a request's hot path.
    """
    c = _LEDGER.c
    async with engine.connect() as conn:
        experiments = (await conn.execute(_LABEL_EXPERIMENTS_IN, {"database": database, "label": label})).scalars()
        query = select(c.doc_id, c.status).where(
            c.database == database, c.experiment.in_(sorted(experiments)), c.label == label
        )
        if statuses is not None:
            query = query.where(c.status.in_(sorted(statuses)))
        if campaign_id is not None:
            query = query.where(c.campaign_id == campaign_id)
        # Sorted here: asked to sort, SQLite walked the database's whole ledger in id order (its primary key).
        rows = (await conn.execute(query)).all()
    return sorted((str(doc_id), str(status)) for doc_id, status in rows)


async def label_sites(engine: AsyncEngine, label: str) -> list[str]:
    """The sites of the counted jobs of ``label``, sorted: its ledger rows, read by the label index of each
    database and experiment that holds it (an admin's question; no index leads with the label alone)."""
    c = _LEDGER.c
    sites: set[str] = set()
    async with engine.connect() as conn:
        for database, experiment in (await conn.execute(_LABEL_HOMES, {"label": label})).all():
            query = select(c.site).where(c.database == database, c.experiment == experiment, c.label == label)
            sites.update(str(site) for site in (await conn.execute(query.distinct())).scalars() if site)
    return sorted(sites)


async def known_experiments(engine: AsyncEngine) -> list[str]:
    """Every experiment that has counted jobs: O(owners x databases x experiments x statuses) rows."""
    async with engine.connect() as conn:
        return [str(experiment) for experiment in (await conn.execute(_KNOWN_EXPERIMENTS)).scalars()]


async def _by_status(engine: AsyncEngine, query: Select[Any]) -> dict[str, dict[str, int]]:
    """``{key: {status: jobs}}`` from a query of ``(key, status, jobs)`` rows (rows of no jobs left out)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for key, status, jobs in rows:
        if jobs:
            out[str(key)][str(status)] = int(jobs)
    return dict(out)
