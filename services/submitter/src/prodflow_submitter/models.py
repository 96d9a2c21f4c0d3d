"""SQL tables of submitter: campaigns and sites."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Campaign(SQLModel, table=True):
    """A submitted jobs.json (or a resubmission of failures): the job documents of one pass."""

    __tablename__ = "campaign"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("content_sha256"),
        # GET /api/campaigns by label or request: entered at one of the caller's experiments (experiment_scope)
        Index("ix_campaign_experiment_label", "experiment", "label", "id"),
        Index("ix_campaign_experiment_request_id", "experiment", "request_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    experiment: str = Field(index=True)
    label: str = Field(index=True)
    default_label: str | None = None
    request_id: str | None = Field(default=None, index=True)
    database: str
    site: str = Field(index=True)
    pass_number: int
    kind: str = "submission"  # submission | resubmission
    parent_campaign_id: int | None = None
    state: str = "creating"  # creating → created
    jobs: int = 0
    created_docs: int = 0
    content_sha256: str
    idempotency_key: str | None = None
    rat_v: str = ""
    ratdb_tag: str | None = None
    jobs_json: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    run_list: list[int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    command_templates: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    labels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def public_id(self) -> str:
        return campaign_public_id(self.id or 0)


class SiteRow(SQLModel, table=True):
    """A site: a name bound to a backend, a storage element and limits."""

    __tablename__ = "site"

    name: str = Field(primary_key=True)
    backend: str
    storage_element: str
    max_running: int = 100
    max_attempts: int = 3
    retry_exit_codes: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    max_walltime_s: int | None = None
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    queue_order: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    command_template: str | None = None
    allow_campaign_commands: bool = False
    drained: bool = False
    source: str = "api"  # api | file | embedded
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


def campaign_public_id(number: int) -> str:
    """``camp-000007``."""
    return f"camp-{number:06d}"


def campaign_number(public_id: str) -> int | None:
    """The row id of ``camp-000007``, or ``None`` if it is not a campaign id."""
    prefix, _, digits = public_id.partition("-")
    return int(digits) if prefix == "camp" and digits.isdigit() else None


TABLES = [SQLModel.metadata.tables[name] for name in ("campaign", "site")]
