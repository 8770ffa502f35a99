"""SQL over many rows at once (claims and records handle a batch per statement)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, Table, any_, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def among(session: Session, column: ColumnElement[Any], ids: Iterable[str]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL it is `= ANY(one array parameter)`: the statement's
    compiled form stays cached and nothing is rendered per id, however many there are."""
    values = sorted(set(ids))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, type_=ARRAY(String)))
    return column.in_(values)


def insert_many(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows (all with the same keys). On PostgreSQL it is one statement over one array
    per column (`INSERT ... SELECT FROM unnest(...)`), not one round of the protocol per row."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), rows)
        return
    names = list(rows[0])
    arrays = [
        literal([row[name] for row in rows], type_=ARRAY(table.c[name].type)) for name in names
    ]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="new")
    session.execute(insert(table).from_select(names, select(*source.c)))
