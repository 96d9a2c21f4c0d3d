"""Base model and field types for request bodies: unknown fields are refused, and so are look-alike values.

pydantic's default (lax) mode reads ``"3"`` or ``3.0`` as the integer 3 and ``0`` or ``"true"`` as booleans. A
body field of one of the ``Strict*`` types below takes only a JSON value of its own type (an integer is still a
valid float). Query and path parameters arrive as text and keep the ordinary parsing; so do dates and enums,
which a JSON body can only carry as strings.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictFloat, StrictInt

__all__ = [
    "StrictBool",
    "StrictFloat",
    "StrictInt",
    "StrictModel",
    "StrictNonNegativeInt",
    "StrictPositiveFloat",
    "StrictPositiveInt",
]

StrictPositiveInt = Annotated[int, Strict(), Field(gt=0)]
StrictNonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
StrictPositiveFloat = Annotated[float, Strict(), Field(gt=0)]


class StrictModel(BaseModel):
    """A request body model that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")
