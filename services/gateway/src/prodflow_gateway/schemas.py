"""Bodies of the gateway's own API: tokens and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from prodflow_core.strict import StrictDatetime, StrictModel, json_integer
from pydantic import BaseModel, BeforeValidator, Field, model_validator

Role = Literal["reader", "requester", "manager", "admin"]


# Bounds before the validator, so that the OpenAPI document states them (minimum/maximum).
TokenLifetime = Annotated[int, Field(ge=1, le=10 * 365 * 86_400), BeforeValidator(json_integer)]


class TokenCreate(StrictModel):
    """A new token: who it is for, which experiments and roles."""

    user: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@:-]+$")
    experiments: list[str] = Field(min_length=1, max_length=64)
    roles: list[Role] = Field(min_length=1)
    description: str = Field("", max_length=500)
    expires_at: StrictDatetime | None = Field(None, description="when it stops working (UTC if no offset is given)")
    expires_in: TokenLifetime | None = Field(
        None, description="seconds from now; default: the gateway's token lifetime"
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> Self:
        if self.expires_at is not None and self.expires_in is not None:
            raise ValueError("give expires_at or expires_in, not both")
        if self.expires_at is not None:
            if self.expires_at.tzinfo is None:
                self.expires_at = self.expires_at.replace(tzinfo=UTC)
            if self.expires_at <= datetime.now(UTC):
                raise ValueError("expires_at is in the past")
        return self


class TokenInfo(BaseModel):
    """A token as listed (never the secret)."""

    id: str
    user: str
    experiments: list[str]
    roles: list[str]
    description: str
    created_by: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None = None
    last_used_at: datetime | None = Field(
        None, description="last call it authenticated (written at most once a minute: may lag by that much)"
    )


class TokenCreated(TokenInfo):
    """A token just created: the only time its secret is shown."""

    token: str


class WhoAmI(BaseModel):
    """The caller as the gateway sees them."""

    user: str
    experiments: list[str]
    roles: list[str]
    token_id: str | None


class AuditEntryOut(BaseModel):
    """One state-changing call through the gateway: who, what, on which target, how it was answered."""

    id: int
    at: datetime = Field(description="when the gateway received the call (UTC)")
    user: str
    token_id: str | None
    roles: list[str]
    experiment: str | None = Field(description="the query's or the body's experiment, else the path's")
    method: str
    path: str
    target: str | None = Field(description="the path's last id, or the id of what the call created")
    status: int = Field(description="the status code of the answer")
    request_id: str | None
    client: str | None = Field(description="the caller's address as the gateway saw it")


class AuditPage(BaseModel):
    """A page of the audit log, newest first; ``next`` is the ``cursor`` of the following page."""

    items: list[AuditEntryOut]
    count: int
    next: str | None
