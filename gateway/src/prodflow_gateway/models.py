"""API tokens, stored hashed."""

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
