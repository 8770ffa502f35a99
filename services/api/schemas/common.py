"""Shared pieces of request and response bodies."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints

# Surrounding whitespace is dropped, so a value needs something else (the `\S` documents it).
SOMETHING = r"\S"
Region = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=SOMETHING)
]
Area = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=SOMETHING)
]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000, pattern=SOMETHING)
]

FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _calendar_date(value: object) -> object:
    """Only `YYYY-MM-DD` (RFC 3339 full-date): numbers are not read as timestamps."""
    if isinstance(value, date) or (isinstance(value, str) and FULL_DATE.fullmatch(value)):
        return value
    raise ValueError("Input should be a date as YYYY-MM-DD")


def json_integer(value: object) -> object:
    """A JSON number (`3` or `3.0`), not `true` or `"3"` read as one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a valid integer")
    return value


def _true_only(value: object) -> object:
    """JSON `true` itself, not 1 (consent is never inferred)."""
    if value is not True:
        raise ValueError("Input should be true")
    return value


Day = Annotated[date, BeforeValidator(_calendar_date)]
Whole = Annotated[int, BeforeValidator(json_integer)]
AlwaysTrue = Annotated[Literal[True], BeforeValidator(_true_only)]


class Strict(BaseModel):
    """Refuses unknown fields: that is how readiness conditions are kept out of the data."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel):
    """The cursor to pass back as `cursor` for the next page, or None at the end."""

    next_cursor: str | None = None
