"""The intake transaction, shared by the requests that arrive together (group commit).

Each request validates its body and builds its rows (referral, event, audit entry, stored
answer) on its own; then it joins the next batch. One batch runs at a time per process and
takes every request waiting when it starts, so when idle a batch is one request, committed at
once, and under load it is one claim of all the Idempotency-Keys, one insert per table and one
commit for many requests instead of the same three round trips each (the statements, not the
database's work, were most of an intake's cost). If a batch fails because of what a request
sent (a unique violation, bad data), each of its requests is run alone, so one request's
failure is never another's; if the database is away, the whole batch is answered at once.

Core statements, not the ORM's unit of work: this is the busiest write of the service, and the
ORM's bookkeeping for four new rows cost more than the database did."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import orjson
from sqlalchemy import (
    Boolean,
    Executable,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import column as named_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import (
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.errors import Problem
from shared.db import is_postgres
from shared.models import Base, IdempotencyKey
from shared.models.base import JSONType
from shared.outbox import EventRef

IDEMPOTENCY = cast(Table, IdempotencyKey.__table__)
K = IDEMPOTENCY.c
MOST_PER_BATCH = 64
BUSY = "A request with this Idempotency-Key is still being processed."

# Built once: a statement object reused is compiled once and its cache key is memoized, where
# one built per request costs more CPU than the database spends running it.
_FIND = select(K.fingerprint, K.status_code, K.response, K.location).where(
    and_(K.organization_id == bindparam("organization_id"), K.key == bindparam("key"))
)
# Every key of a batch claimed for the transaction (try-locks never wait, so no order is
# needed) and looked up, in the batch's order. Evaluated together with the lookup, as the
# single-key form was: a key committed by another process between this statement's snapshot
# and its lock shows up as a unique violation at insert, and that request is run again.
_CLAIM_AND_FIND = text(
    "SELECT pg_try_advisory_xact_lock(hashtextextended(claim.lock_name, 0)) AS claimed,"
    " stored.fingerprint, stored.status_code, stored.response, stored.location"
    " FROM unnest(CAST(:organization_ids AS varchar[]), CAST(:keys AS varchar[]),"
    " CAST(:lock_names AS text[])) WITH ORDINALITY AS claim(organization_id, key, lock_name, n)"
    " LEFT JOIN idempotency_keys AS stored"
    " ON stored.organization_id = claim.organization_id AND stored.key = claim.key"
    " ORDER BY claim.n"
).columns(
    claimed=Boolean,
    fingerprint=String,
    status_code=Integer,
    response=JSONType,
    location=String,
)


def complete(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """The row with its columns' Python-side defaults filled in (ids, timestamps, flags), so the
    statement needs nothing computed at insert time and the answer can be built from it."""
    row = dict(values)
    for column in table.columns:
        if column.key not in row and column.default is not None:
            default: Any = column.default
            row[column.key] = default.arg(None) if default.is_callable else default.arg
    return row


@dataclass(eq=False)
class Intake:
    """One request's part of a batch: its key, and the complete rows it writes if the key is
    new (every row of a table with the same columns)."""

    organization_id: str
    key: str
    rows: list[tuple[Table, dict[str, Any]]]
    events: list[EventRef]
    answer: asyncio.Future[Any] = field(init=False)

    @property
    def lock_name(self) -> str:
        return f"idempotency:{self.organization_id}:{self.key}"


class Intakes:
    """One per API process: runs the intake transactions of concurrent requests together."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._waiting: list[Intake] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, intake: Intake) -> Any:
        """None once the rows are committed; or the answer stored for this key earlier
        (fingerprint, status_code, response, location); or 409 while another request of
        another process holds the key. The batch runs in its own task: a request that goes
        away does not stop the others'."""
        intake.answer = asyncio.get_running_loop().create_future()
        self._waiting.append(intake)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await intake.answer

    async def _drain(self) -> None:
        while self._waiting:
            batch: list[Intake] = []
            later: list[Intake] = []
            keys: set[tuple[str, str]] = set()
            for intake in self._waiting:
                key = (intake.organization_id, intake.key)
                if key in keys or len(batch) == MOST_PER_BATCH:
                    later.append(intake)  # the same key twice: the second sees the first's
                else:
                    keys.add(key)
                    batch.append(intake)
            self._waiting = later
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[Intake]) -> None:
        try:
            answers = await self._transaction(batch)
        except Exception as failure:
            if _not_the_requests(failure) or (
                len(batch) == 1 and not isinstance(failure, IntegrityError)
            ):
                for intake in batch:  # (the database is away: each alone would wait again)
                    _settle(intake, failure)
                return
            for intake in batch:
                await self._run_alone(intake)
            return
        for intake, answer in zip(batch, answers, strict=True):
            _settle(intake, answer)

    async def _run_alone(self, intake: Intake) -> None:
        """One request's transaction; once more after a unique violation (the same key
        committed by a request of another process that overlapped this one: the second
        attempt finds its answer)."""
        for attempt in (1, 2):
            try:
                answer = (await self._transaction([intake]))[0]
            except IntegrityError as failure:
                if attempt == 1:
                    continue
                answer = failure
            except Exception as failure:
                answer = failure
            _settle(intake, answer)
            return

    async def _transaction(self, batch: Sequence[Intake]) -> list[Any]:
        """Per request: the stored answer, or a Problem (the key is busy), or None (written)."""
        async with self.sessions() as session:
            found = await _claim_and_find(session, batch)
            tables: dict[str, tuple[Table, list[dict[str, Any]]]] = {}
            for intake, answer in zip(batch, found, strict=True):
                if answer is not None:
                    continue
                for table, values in intake.rows:
                    tables.setdefault(table.name, (table, []))[1].append(values)
            await _insert_all(session, list(tables.values()))
            await session.commit()
        return found


def _not_the_requests(failure: Exception) -> bool:
    """A failure of the database or the connection to it, not of anything a request sent."""
    return isinstance(
        failure, (OperationalError, InterfaceError, PoolTimeout, DisconnectionError, OSError)
    )


def _settle(intake: Intake, answer: Any) -> None:
    if intake.answer.done():  # the request went away; its rows are committed all the same
        return
    if isinstance(answer, Exception):
        intake.answer.set_exception(answer)
    else:
        intake.answer.set_result(answer)


async def _claim_and_find(session: AsyncSession, batch: Sequence[Intake]) -> list[Any]:
    """Per request: the stored answer for its key, a 409 Problem if another transaction holds
    the key right now (PostgreSQL), or None. (SQLite runs one writer at a time: no two are
    ever in flight.)"""
    if not is_postgres(session.get_bind()):
        found = []
        for intake in batch:
            key = {"organization_id": intake.organization_id, "key": intake.key}
            found.append((await session.execute(_FIND, key)).first())
        return found
    params = {
        "organization_ids": [intake.organization_id for intake in batch],
        "keys": [intake.key for intake in batch],
        "lock_names": [intake.lock_name for intake in batch],
    }
    answers: list[Any] = []
    for row in await session.execute(_CLAIM_AND_FIND, params):
        if not row.claimed:
            answers.append(Problem(409, BUSY))
        else:
            answers.append(row if row.fingerprint is not None else None)
    return answers


async def _insert_all(
    session: AsyncSession, tables: list[tuple[Table, list[dict[str, Any]]]]
) -> None:
    """Insert each table's rows (all with the same columns). On PostgreSQL one statement for
    every table, each a data-modifying CTE over the table's rows as one JSON document (one
    parameter per table, so the driver keeps the statement parsed; one array parameter per
    column made it parse a long statement on every call, and dump every array)."""
    if not tables:
        return
    if not is_postgres(session.get_bind()):
        for table, rows in tables:
            await session.execute(insert(table), rows)
        return
    shape = tuple((table.name, tuple(rows[0])) for table, rows in tables)
    params = {f"t{number}": orjson.dumps(rows).decode() for number, (_, rows) in enumerate(tables)}
    await session.execute(_insert_statement(shape), params)


@lru_cache(maxsize=16)
def _insert_statement(shape: tuple[tuple[str, tuple[str, ...]], ...]) -> Executable:
    """`WITH w0 AS (INSERT INTO referrals (...) SELECT ... FROM jsonb_to_recordset(:t0) AS
    n0(id VARCHAR(26), ...)), ... SELECT true`: each field read as its column's type."""
    statement = select(literal(True))
    for number, (name, keys) in enumerate(shape):
        table = Base.metadata.tables[name]
        document = sql_cast(bindparam(f"t{number}", type_=Text), JSONB)
        rows = (
            func.jsonb_to_recordset(document)
            .table_valued(*(named_column(key, table.c[key].type) for key in keys))
            .render_derived(name=f"n{number}", with_types=True)
        )
        written = insert(table).from_select(list(keys), select(*(rows.c[key] for key in keys)))
        statement = statement.add_cte(written.cte(f"w{number}"))
    return statement
