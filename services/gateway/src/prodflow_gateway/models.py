"""Tables of the gateway: API tokens (stored hashed) and the audit log of state-changing calls."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class ApiToken(SQLModel, table=True):
    """A bearer token bound to a user, a set of experiments (``*`` = all) and roles. Only its hash is kept."""

    __tablename__ = "api_tokens"

    id: str = Field(primary_key=True)
    user: str = Field(index=True)
    experiments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    token_hash: str = Field(index=True, unique=True)
    description: str = ""
    created_by: str | None = None
    created_at: datetime = Field(default_factory=_now)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rotated_at: datetime | None = None
    last_used_at: datetime | None = None
    """When the token last authenticated a call, written at most once per ``token_last_used_every_s``."""


class AuditEntry(SQLModel, table=True):
    """One state-changing call through the gateway, as answered. Append-only: nothing updates or deletes rows."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    user: str = Field(index=True)
    token_id: str | None = None
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    experiment: str | None = None
    method: str
    path: str = Field(index=True)
    target: str | None = None
    status: int
    request_id: str | None = None
    client: str | None = None
