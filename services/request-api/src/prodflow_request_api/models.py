"""SQL tables of request-api: requests and their history, the catalog, and the mail and event outboxes.

Times are stored as RFC 3339 UTC strings of fixed width (``2026-11-25T10:05:00.000Z``), which sort as times on
every database.
"""

# No ``from __future__ import annotations``: SQLModel reads these annotations at class creation.

from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

_request_version = Column("version", Integer, nullable=False, default=1)


class RequestRow(SQLModel, table=True):
    """A production request. ``label_claim`` holds the label while the request owns it (unique per experiment).

    ``version`` is SQLAlchemy's version counter: an update made from a stale read (two managers approving at
    once) matches no row and fails with ``StaleDataError`` instead of overwriting.
    """

    __tablename__ = "production_request"
    __table_args__ = (
        UniqueConstraint("experiment", "label_claim", name="uq_request_label_claim"),
        # GET /api/requests by label, state or requester: entered at the caller's experiments, never another's rows
        Index("ix_production_request_experiment_label", "experiment", "label", "id"),
        Index("ix_production_request_experiment_state", "experiment", "state", "id"),
        Index("ix_production_request_experiment_requester", "experiment", "requester", "id"),
    )
    __mapper_args__ = {"version_id_col": _request_version}

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(index=True)
    title: str
    kind: str
    rat_v: str
    label: str = Field(index=True)
    label_claim: str | None = None
    ratdb_tag: str | None = None
    contacts: list[str] = Field(sa_column=Column(JSON, nullable=False))
    modules: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    site: str | None = None
    justification: str = ""
    priority: int | None = None
    state: str = Field(index=True)
    requester: str = Field(index=True)
    created_at: str
    updated_at: str
    jobs_json: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    jobs_json_sha256: str | None = None
    n_jobs: int | None = None
    campaign_id: str | None = None
    version: int = Field(default=1, sa_column=_request_version)


class HistoryRow(SQLModel, table=True):
    """One state change of a request: who, when, why."""

    __tablename__ = "request_history"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="production_request.id", index=True)
    state: str
    at: str
    by: str
    note: str = ""


class MailRow(SQLModel, table=True):
    """A mail waiting in the outbox, or sent (``sent_at``), or given up (``failed_at``)."""

    __tablename__ = "mail_outbox"

    id: int | None = Field(default=None, primary_key=True)
    request_id: int | None = Field(default=None, foreign_key="production_request.id", index=True)
    recipients: list[str] = Field(sa_column=Column(JSON, nullable=False))
    subject: str
    body: str
    attachment_name: str | None = None
    attachment: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    html: str | None = None
    list_id: str | None = None
    unsubscribe: str | None = None
    kind: str | None = Field(default=None, index=True)
    """``approval``, ``outcome`` or ``digest`` (rows older than the kinds have none)."""
    dedup_key: str | None = Field(default=None, index=True)
    """One mail per key: an outcome seen twice (at-least-once events) is mailed once."""
    attempts: int = 0
    next_attempt_at: str = Field(index=True)
    lease_until: str | None = None
    sent_at: str | None = Field(default=None, index=True)
    failed_at: str | None = None
    last_error: str | None = None
    created_at: str


class EventRow(SQLModel, table=True):
    """An event written in the same transaction as the change it reports, published to the stream afterwards."""

    __tablename__ = "event_outbox"

    event_id: str = Field(primary_key=True)
    type: str
    subject: str | None = None
    experiment: str | None = None
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: str
    published_at: str | None = Field(default=None, index=True)


class CatalogExperimentRow(SQLModel, table=True):
    """An experiment of the catalog and its mailing list."""

    __tablename__ = "catalog_experiment"

    experiment: str = Field(primary_key=True)
    description: str = ""
    mailing_list: list[str] = Field(sa_column=Column(JSON, nullable=False))
    support_list: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Where failure digests go; ``None``: the mailing list."""
    updated_at: str


class CatalogModuleRow(SQLModel, table=True):
    """A module (macro) of an experiment; ``spec`` is a :class:`prodflow_request_api.catalog.ModuleSpec`."""

    __tablename__ = "catalog_module"

    experiment: str = Field(primary_key=True, foreign_key="catalog_experiment.experiment")
    name: str = Field(primary_key=True)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: str


class CatalogRunRow(SQLModel, table=True):
    """A detector run of an experiment and its detector-conditions tag."""

    __tablename__ = "catalog_run"

    experiment: str = Field(primary_key=True, foreign_key="catalog_experiment.experiment")
    run: int = Field(primary_key=True)
    conditions: str = ""


class NotificationPreferenceRow(SQLModel, table=True):
    """A user's address and the kinds of mail they want (``None``: the default, yes)."""

    __tablename__ = "notification_preference"

    user: str = Field(primary_key=True)
    address: str | None = Field(default=None, index=True)
    approval: bool | None = None
    outcome: bool | None = None
    digest: bool | None = None
    updated_at: str


class FailureTallyRow(SQLModel, table=True):
    """Failures of one kind, label, site and module (and exit code) seen in one event, until a digest reports them.

    ``kind``: ``failed`` (attempts exhausted), ``lost`` (by the backend), ``partFail`` (outputs not transferred),
    ``drained`` (a site drained by policy). Kept after the digest (``digested_at``): the outcome mail of a failed
    request reads its failing modules and exit codes here.
    """

    __tablename__ = "failure_tally"
    __table_args__ = (
        Index("ix_failure_tally_experiment_digested", "experiment", "digested_at"),
        Index("ix_failure_tally_experiment_label", "experiment", "label"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(index=True)
    experiment: str
    label: str
    site: str = ""
    module: str = ""
    kind: str
    exit_code: str = ""
    count: int
    example: str = ""
    seen_at: str
    digested_at: str | None = None


class DigestClockRow(SQLModel, table=True):
    """When an experiment's last failure digest was queued: at most one per interval."""

    __tablename__ = "digest_clock"

    experiment: str = Field(primary_key=True)
    last_digest_at: str


TABLES = [
    SQLModel.metadata.tables[model.__tablename__]
    for model in (
        RequestRow,
        HistoryRow,
        MailRow,
        EventRow,
        CatalogExperimentRow,
        CatalogModuleRow,
        CatalogRunRow,
        NotificationPreferenceRow,
        FailureTallyRow,
        DigestClockRow,
    )
]
