"""Bodies of the token API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from prodflow_core.strict import StrictDatetime, StrictModel
from pydantic import BaseModel, Field

Role = Literal["reader", "requester", "manager", "admin"]


class TokenCreate(StrictModel):
    """A new token: who it is for, which experiments and roles."""

    user: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@:-]+$")
    experiments: list[str] = Field(min_length=1, max_length=64)
    roles: list[Role] = Field(min_length=1)
    description: str = Field("", max_length=500)
    expires_at: StrictDatetime | None = None


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


class TokenCreated(TokenInfo):
    """A token just created: the only time its secret is shown."""

    token: str


class WhoAmI(BaseModel):
    """The caller as the gateway sees them."""

    user: str
    experiments: list[str]
    roles: list[str]
    token_id: str | None
