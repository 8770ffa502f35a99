"""Shared pieces of request and response bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Region = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Area = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class Strict(BaseModel):
    """Refuses unknown fields: that is how readiness conditions are kept out of the data."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel):
    """The cursor to pass back as `cursor` for the next page, or None at the end."""

    next_cursor: str | None = None
