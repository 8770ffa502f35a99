"""The intake transaction in few round trips: the Idempotency-Key claimed and looked up in one
statement, then the referral, its event, its audit entry and its stored answer written in one
(PostgreSQL: one statement of data-modifying CTEs; SQLite, one writer, runs them in turn).

Core statements, not the ORM's unit of work: this is the busiest write of the service, and the
ORM's bookkeeping for four new rows cost more than the database did."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import Caller
from services.api.errors import Problem
from shared.db import is_postgres
from shared.models import Base, IdempotencyKey

IDEMPOTENCY = cast(Table, IdempotencyKey.__table__)
K = IDEMPOTENCY.c

# Built once: a statement object reused is compiled once and its cache key is memoized, where
# one built per request costs more CPU than the database spends running it.
_MATCHES = and_(K.organization_id == bindparam("organization_id"), K.key == bindparam("key"))
_STORED = (K.fingerprint, K.status_code, K.response, K.location)
_FIND = select(*_STORED).where(_MATCHES)
_CLAIM_AND_FIND = select(
    func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("lock_name"), 0)).label(
        "claimed"
    ),
    *_STORED,
).select_from(select(literal(1).label("one")).subquery().outerjoin(IDEMPOTENCY, _MATCHES))


async def claim_and_find(session: AsyncSession, caller: Caller, key: str) -> Any:
    """The stored answer for this key (fingerprint, status_code, response, location), or None.
    On PostgreSQL the key is also claimed for this transaction, or 409 if another request is
    processing it right now. (SQLite runs one writer at a time: no two are ever in flight.)"""
    params = {"organization_id": caller.organization_id, "key": key}
    if not is_postgres(session.get_bind()):
        return (await session.execute(_FIND, params)).first()
    params["lock_name"] = f"idempotency:{caller.organization_id}:{key}"
    row = (await session.execute(_CLAIM_AND_FIND, params)).one()
    if not row.claimed:
        raise Problem(409, "A request with this Idempotency-Key is still being processed.")
    return row if row.fingerprint is not None else None


def complete(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """The row with its columns' Python-side defaults filled in (ids, timestamps, flags), so the
    statement needs nothing computed at insert time and the answer can be built from it."""
    row = dict(values)
    for column in table.columns:
        if column.key not in row and column.default is not None:
            default: Any = column.default
            row[column.key] = default.arg(None) if default.is_callable else default.arg
    return row


Shape = tuple[tuple[str, tuple[str, ...]], ...]  # (table name, column keys) per row


@lru_cache(maxsize=64)
def _insert_all(shape: Shape) -> Executable:
    """One statement inserting one row per (table, columns): data-modifying CTEs."""
    statement = select(literal(True))
    for number, (name, keys) in enumerate(shape):
        table = Base.metadata.tables[name]
        values = {key: bindparam(f"r{number}_{key}", type_=table.c[key].type) for key in keys}
        statement = statement.add_cte(insert(table).values(values).cte(f"written_{number}"))
    return statement


@lru_cache(maxsize=64)
def _insert_one(name: str, keys: tuple[str, ...]) -> Executable:
    table = Base.metadata.tables[name]
    return insert(table).values({key: bindparam(key, type_=table.c[key].type) for key in keys})


async def insert_rows(session: AsyncSession, rows: Sequence[tuple[Table, dict[str, Any]]]) -> None:
    """Insert complete rows (see `complete`) in as few statements as the database allows."""
    if not is_postgres(session.get_bind()):
        for table, values in rows:
            await session.execute(_insert_one(table.name, tuple(values)), values)
        return
    shape = tuple((table.name, tuple(values)) for table, values in rows)
    params = {
        f"r{number}_{key}": value
        for number, (_, values) in enumerate(rows)
        for key, value in values.items()
    }
    await session.execute(_insert_all(shape), params)
