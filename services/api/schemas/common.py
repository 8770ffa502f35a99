"""Shared pieces of request and response bodies."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, model_validator

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


def _has_nul(value: object) -> bool:
    kind = type(value)
    if kind is str:
        return "\x00" in value  # type: ignore[operator]
    if kind is list or kind is tuple:
        return any(map(_has_nul, value))  # type: ignore[call-overload]
    if kind is dict:
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())  # type: ignore[attr-defined]
    return False  # (a nested body checks its own fields; enum members are known values)


NO_NUL = "^[^\\x00]*$"
SOMETHING_NO_NUL = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"


def _document_no_nul(schema: dict[str, Any]) -> None:
    """Say in the OpenAPI document what _no_nul enforces: text without NUL (a pattern on
    each free-text property, `\\S` as something other than whitespace and no NUL)."""

    def mark(node: dict[str, Any]) -> None:
        if node.get("type") == "string" and not {"pattern", "enum", "format", "const"} & set(node):
            node["pattern"] = NO_NUL
        elif node.get("pattern") == SOMETHING:
            node["pattern"] = SOMETHING_NO_NUL
        for nested in node.get("anyOf", []):
            mark(nested)
        if isinstance(node.get("items"), dict):
            mark(node["items"])

    for node in schema.get("properties", {}).values():
        mark(node)


class Strict(BaseModel):
    """Refuses unknown fields: that is how readiness conditions are kept out of the data.
    Refuses text with a NUL character, which JSON can carry (`\\u0000`) and PostgreSQL
    cannot store."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_no_nul)

    @model_validator(mode="after")
    def _no_nul(self) -> Self:
        if any(map(_has_nul, self.__dict__.values())):
            names = ", ".join(name for name, value in self.__dict__.items() if _has_nul(value))
            raise ValueError(f"Text should not contain NUL characters (\\u0000): {names}")
        return self


class Page(BaseModel):
    """The cursor to pass back as `cursor` for the next page, or None at the end."""

    next_cursor: str | None = None
