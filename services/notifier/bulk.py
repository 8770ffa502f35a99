"""SQL over many rows at once (claims and records handle a batch per statement). Statements on
every delivery's path are built once per dialect and take their ids as one parameter: building
and keying a statement anew would cost more than running it."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from shared.db import is_postgres


def among(column: ColumnElement[Any], name: str, *, postgres: bool) -> ColumnElement[bool]:
    """`column IN :name`, the ids given at execution. On PostgreSQL `= ANY(one array)`: one
    parameter however many ids, so the statement's text and plan stay the same."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


def distinct(ids: Iterable[str]) -> list[str]:
    """Ids once each, in order (rows are locked in id order, so workers never deadlock)."""
    return sorted(set(ids))


@cache
def _insert(
    table: Table, names: tuple[str, ...], postgres: bool, parent: str | None = None
) -> Executable:
    if not postgres:
        return insert(table)
    arrays = [bindparam(name, type_=ARRAY(table.c[name].type)) for name in names]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="new")
    rows = select(*source.c)
    if parent is not None:  # only rows whose parent row exists, locked as the key check locks
        [key] = table.c[parent].foreign_keys  # it (so a parent being deleted is waited for)
        found = select(key.column).where(key.column == source.c[parent])
        rows = rows.where(found.with_for_update(read=True, key_share=True).exists())
    return insert(table).from_select(list(names), rows)


def insert_many(
    session: Session, table: Table, rows: list[dict[str, Any]], *, parent: str | None = None
) -> None:
    """Insert rows (all with the same keys). On PostgreSQL it is one statement over one array
    per column (`INSERT ... SELECT FROM unnest(...)`), not one round of the protocol per row;
    with `parent` (a foreign key column, PostgreSQL only), rows whose parent row is gone are
    left out."""
    if not rows:
        return
    names = tuple(rows[0])
    postgres = is_postgres(session.get_bind())
    if parent is not None and not postgres:
        raise ValueError("rows are checked for their parent row on PostgreSQL only")
    statement = _insert(table, names, postgres, parent)
    if not postgres:
        session.execute(statement, rows)
        return
    session.execute(statement, {name: [row[name] for row in rows] for name in names})
