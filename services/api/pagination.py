"""Cursor pagination and `changed_since` over (updated_at, id), oldest change first."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_

from services.api.errors import Problem

MAX_LIMIT = 500


def encode_cursor(updated_at: datetime, object_id: str) -> str:
    """An opaque cursor after the given row."""
    return base64.urlsafe_b64encode(f"{updated_at.isoformat()}|{object_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, object_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), object_id
    except (ValueError, UnicodeDecodeError) as error:
        raise Problem(
            400, "The cursor is not valid; pass back a cursor this API returned."
        ) from error


def parse_changed_since(value: str) -> tuple[datetime, str]:
    """`changed_since` is an RFC 3339 time or a cursor returned earlier."""
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return decode_cursor(value)
    if stamp.tzinfo is None:
        raise Problem(400, "changed_since needs a time zone (RFC 3339, e.g. 2026-11-27T09:00:00Z).")
    return stamp, ""


def page(
    query: Select[Any],
    model: Any,
    *,
    changed_since: str | None,
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """The query restricted to rows after the cursor (or changed since), in change order."""
    if not 1 <= limit <= MAX_LIMIT:
        raise Problem(400, f"limit must be between 1 and {MAX_LIMIT}.")
    after = (
        decode_cursor(cursor)
        if cursor
        else parse_changed_since(changed_since)
        if changed_since
        else None
    )
    if after is not None:
        stamp, object_id = after
        query = query.where(
            or_(model.updated_at > stamp, and_(model.updated_at == stamp, model.id > object_id))
        )
    return query.order_by(model.updated_at, model.id).limit(limit + 1)


def split_page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows and the cursor of the next page (None when this is the last)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.updated_at, last.id)
