"""Base model and field types for request bodies: unknown fields are refused, and so are look-alike values.

pydantic's default (lax) mode reads ``"3"`` or ``true`` as integers and ``0`` or ``"true"`` as booleans. A body
field of one of the ``Strict*`` types below takes only a JSON value of its own type, as JSON Schema types them
(``3.0`` is an integer, ``3`` a number); a :data:`StrictDatetime` only a string. Query and path parameters
arrive as text and keep the ordinary parsing; enums, which a JSON body can only carry as strings, keep theirs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, StrictFloat
from pydantic_core import PydanticCustomError

__all__ = [
    "StrictBool",
    "StrictDatetime",
    "StrictFloat",
    "StrictInt",
    "StrictInt32",
    "StrictModel",
    "StrictNonNegativeInt",
    "StrictPositiveFloat",
    "StrictPositiveInt",
    "StrictPositiveInt32",
    "json_integer",
]


def json_integer(value: Any) -> Any:
    """A ``BeforeValidator`` that lets only JSON numbers through (no strings, no booleans); bounds go before it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def _date_text(value: Any) -> Any:
    if isinstance(value, int | float):  # pydantic would read it as seconds since 1970
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 date-time string, not a number")
    return value


StrictInt = Annotated[int, BeforeValidator(json_integer)]
"""An integer as JSON Schema has it: ``3`` or ``3.0``; never ``"3"``, ``true`` or ``3.5``."""
# bounds before the validator: after it, pydantic writes them into the JSON schema as "gt", not "exclusiveMinimum"
StrictPositiveInt = Annotated[int, Field(gt=0), BeforeValidator(json_integer)]
StrictNonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(json_integer)]
INT32_MAX = 2**31 - 1
"""The largest value of an SQL ``INTEGER`` on PostgreSQL: the bound of a body integer stored in one."""
StrictInt32 = Annotated[int, Field(ge=-INT32_MAX - 1, le=INT32_MAX), BeforeValidator(json_integer)]
StrictPositiveInt32 = Annotated[int, Field(gt=0, le=INT32_MAX), BeforeValidator(json_integer)]
StrictPositiveFloat = Annotated[float, Strict(), Field(gt=0)]
"""A number above 0; an integer is one too, a string or a boolean is not."""
StrictDatetime = Annotated[datetime, BeforeValidator(_date_text)]
"""An RFC 3339 date-time string (``2027-01-31T12:00:00Z``); a number is refused, not read as a Unix time."""


class StrictModel(BaseModel):
    """A request body model that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")
