"""The SQL tables of kept job counts: a ledger of what each job document contributes, and the counts it sums to.

A service that keeps counts owns these tables in its own SQL database. Rows are written by one *owner* (a
monitor replica, the submitter) for the documents it follows; several owners may share one database (monitor
replicas on PostgreSQL), each writing only its own rows, and any of them may read every row.

The ledger's indexes serve the monitor's job listings (:mod:`~prodflow_core.counts.pages`; those only they read
are :data:`LISTING_INDEXES`, which the submitter's ledger leaves out): each starts with ``database`` then
``experiment`` (a caller's listing is fixed to the experiments it may read, so no other
experiment's row is ever walked), then the columns a listing fixes, and ends in ``doc_id``, so a page is one
keyset range.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    MetaData,
    String,
    Table,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, DropIndex
from sqlmodel import Field, SQLModel


class CountedJob(SQLModel, table=True):
    """What one job document adds to the counts, as of the revision ``rev`` last counted."""

    __tablename__ = "counted_job"
    __table_args__ = (
        # the monitor's active jobs (their ids from the index alone); the submitter's waiting jobs (its queue at
        # start) and a site's jobs by status
        Index("ix_counted_job_database_status_id", "database", "status", "doc_id"),
        # a label's jobs (and by status): GET /api/jobs?label=; the submitter's operations and .exactly
        Index("ix_counted_job_experiment_label_status", "database", "experiment", "label", "status", "doc_id"),
    )

    database: str = Field(primary_key=True, max_length=200)
    doc_id: str = Field(primary_key=True, max_length=400)
    rev: int
    experiment: str = Field(max_length=100)
    label: str = Field(max_length=100)
    module: str = Field(max_length=200)
    status: str = Field(max_length=40)
    site: str = Field(max_length=200)
    campaign_id: str = Field(max_length=100)
    events: int = Field(sa_column=Column(BigInteger, nullable=False))


class LabelCount(SQLModel, table=True):
    """Jobs and their events per (database, label, module, status); a label belongs to one owner."""

    __tablename__ = "label_count"
    __table_args__ = (
        Index("ix_label_count_experiment_label", "experiment", "label"),  # a scoped caller's labels
        # a label's counts (a summary), its home and its experiments: without it each read scanned every label's rows
        Index("ix_label_count_label", "label", "database"),
    )

    database: str = Field(primary_key=True, max_length=200)
    label: str = Field(primary_key=True, max_length=100)
    module: str = Field(primary_key=True, max_length=200)
    status: str = Field(primary_key=True, max_length=40)
    experiment: str = Field(max_length=100)
    owner: str = Field(max_length=100)
    jobs: int = Field(sa_column=Column(BigInteger, nullable=False))
    events: int = Field(sa_column=Column(BigInteger, nullable=False))


class CampaignCount(SQLModel, table=True):
    """Jobs per (owner, database, campaign, status): a campaign's labels may belong to several owners."""

    __tablename__ = "campaign_count"
    __table_args__ = (Index("ix_campaign_count_campaign", "campaign_id"),)  # a campaign's counts, not every one's

    owner: str = Field(primary_key=True, max_length=100)
    database: str = Field(primary_key=True, max_length=200)
    campaign_id: str = Field(primary_key=True, max_length=100)
    status: str = Field(primary_key=True, max_length=40)
    jobs: int = Field(sa_column=Column(BigInteger, nullable=False))


class SiteCount(SQLModel, table=True):
    """Jobs per (owner, database, site, status)."""

    __tablename__ = "site_count"

    owner: str = Field(primary_key=True, max_length=100)
    database: str = Field(primary_key=True, max_length=200)
    site: str = Field(primary_key=True, max_length=200)
    status: str = Field(primary_key=True, max_length=40)
    jobs: int = Field(sa_column=Column(BigInteger, nullable=False))


class ExperimentCount(SQLModel, table=True):
    """Jobs per (owner, database, experiment, status): the ``/metrics`` gauges and the experiments that have jobs,
    in a row per status. Read from the label counts instead, the gauges summed every label's rows (46 ms at 2,000
    labels of 10 modules) and the experiments walked every label's index entries. Moved by the same label deltas,
    in the same transaction, as :class:`LabelCount`; filled from it when added to counts made before it."""

    __tablename__ = "experiment_count"

    owner: str = Field(primary_key=True, max_length=100)
    database: str = Field(primary_key=True, max_length=200)
    experiment: str = Field(primary_key=True, max_length=100)
    status: str = Field(primary_key=True, max_length=40)
    jobs: int = Field(sa_column=Column(BigInteger, nullable=False))


class CountsCheckpoint(SQLModel, table=True):
    """The ``_changes`` sequence up to which an owner's counts of a database are complete."""

    __tablename__ = "counts_checkpoint"

    owner: str = Field(primary_key=True, max_length=100)
    database: str = Field(primary_key=True, max_length=200)
    seq: str = Field(max_length=2000)


_LISTING_ORDERS = Table(
    CountedJob.__tablename__,
    MetaData(),  # never created: it names the ledger's columns for the DDL of these indexes only
    *(Column(name, String) for name in ("database", "experiment", "label", "module", "status", "site", "doc_id")),
    Index("ix_counted_job_experiment_label_module", "database", "experiment", "label", "module", "doc_id"),
    Index("ix_counted_job_experiment_status", "database", "experiment", "status", "doc_id"),
    Index("ix_counted_job_experiment_site", "database", "experiment", "site", "status", "doc_id"),
)
LISTING_INDEXES: tuple[str, ...] = tuple(sorted(str(index.name) for index in _LISTING_ORDERS.indexes))
"""The ledger's indexes that only the monitor's job listings read (``GET /api/jobs`` by label and module, by
experiment and status, by site). The submitter's ledger has none of them: every batch of counts writes each index,
and without these the submitter's ledger of 100,000 new documents took 1.45 s instead of 2.05 s
(``bench_indexes.py``)."""


async def keep_listing_indexes(engine: AsyncEngine, kept: bool) -> None:
    """Create the :data:`LISTING_INDEXES` on ``engine``'s ledger (``kept``), or drop them (a ledger no job listing
    reads; one made before they were the monitor's alone has them)."""
    async with engine.begin() as conn:
        for index in _LISTING_ORDERS.indexes:
            await conn.execute(CreateIndex(index, if_not_exists=True) if kept else DropIndex(index, if_exists=True))


RETIRED_LEDGER_INDEXES = (
    "ix_counted_job_label_status",
    "ix_counted_job_label_module",
    "ix_counted_job_database_status",
)
"""Indexes dropped from ledgers made before their successors: label indexes that did not start with the experiment,
and one by status without the id (SQLite read the active jobs' ids from a covering index of every job instead)."""


def _add_missing_ledger_indexes(_metadata: Any, connection: Connection, **_kw: Any) -> None:
    """``create_all`` creates a table's indexes only with the table: add those a ledger made before them lacks,
    and drop the retired ones."""
    if inspect(connection).has_table(CountedJob.__tablename__):
        for index in CountedJob.__table__.indexes:  # type: ignore[attr-defined]
            connection.execute(CreateIndex(index, if_not_exists=True))
        for name in RETIRED_LEDGER_INDEXES:
            connection.execute(text(f"DROP INDEX IF EXISTS {name}"))


event.listen(SQLModel.metadata, "after_create", _add_missing_ledger_indexes)


def _fill_experiment_counts(table: Table, connection: Connection, **_kw: Any) -> None:
    """An ``experiment_count`` added to counts made before it starts from their label counts, in the transaction
    that creates it (before any follower runs), so its readers are exact from the start."""
    if inspect(connection).has_table(LabelCount.__tablename__):
        labels = LabelCount.__table__.c  # type: ignore[attr-defined]
        keys, total = (labels.owner, labels.database, labels.experiment, labels.status), func.sum(labels.jobs)
        summed = select(*keys, total).group_by(*keys).having(total != 0)
        connection.execute(table.insert().from_select(["owner", "database", "experiment", "status", "jobs"], summed))


event.listen(ExperimentCount.__table__, "after_create", _fill_experiment_counts)  # type: ignore[attr-defined]


def count_tables() -> list[Table]:
    """The tables a service that keeps counts creates in its SQL database."""
    return [
        SQLModel.metadata.tables[name]
        for name in (
            "counted_job",
            "label_count",
            "campaign_count",
            "site_count",
            "experiment_count",
            "counts_checkpoint",
        )
    ]
