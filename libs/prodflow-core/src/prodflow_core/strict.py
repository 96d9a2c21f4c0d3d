"""Base model for request bodies: unknown fields are refused, not ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A request body model that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")
