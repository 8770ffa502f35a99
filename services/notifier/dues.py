"""Delivery rows as claims, records and the sweep handle them: read and locked in bulk as plain
rows, changed in memory, written back in few statements (rows changed alike share one)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Select, Table, bindparam, select, update
from sqlalchemy.orm import Session

from services.notifier.bulk import among, distinct, insert_many
from services.notifier.status import DeliveryStatus
from shared.db import is_postgres
from shared.models import Delivery, DeliveryAttempt, new_id

LOST = "attempt lost: its worker stopped before recording the answer (the receiver may have it)"


@dataclass(slots=True)
class Due:
    """A delivery row as claims and the sweep see it; `change` notes what to write back."""

    id: str
    endpoint_id: str
    event_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    changed: bool = False
    attempt_log: list[dict[str, Any]] = field(default_factory=list)

    def change(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)
        self.changed = True


# Claims use the tables directly (Core): the ORM's per-statement work would cost more than the
# HTTP request it prepares.
deliveries = cast(Table, Delivery.__table__)
attempt_table = cast(Table, DeliveryAttempt.__table__)
D = deliveries.c
DUE_COLUMNS = (
    D.id,
    D.endpoint_id,
    D.event_id,
    D.status,
    D.attempts,
    D.next_attempt_at,
    D.last_status_code,
    D.last_error,
    D.delivered_at,
)


AnyRows = Select[*tuple[Any, ...]]


def locked(session: Session, query: AnyRows, *, skip: bool = True) -> list[Due]:
    """Rows locked for this transaction; rows another worker holds are skipped (or waited for)."""
    rows = session.execute(query.with_for_update(skip_locked=skip, of=deliveries))
    return [Due(*row) for row in rows]


@cache
def _by_id(postgres: bool, skip: bool) -> AnyRows:
    return (
        select(*DUE_COLUMNS)
        .where(among(D.id, "ids", postgres=postgres))
        .order_by(D.id)
        .with_for_update(skip_locked=skip, of=deliveries)
    )


def locked_by_id(session: Session, ids: Iterable[str], *, skip: bool = True) -> list[Due]:
    """These rows, locked as `locked` does, by a statement built once."""
    rows = session.execute(_by_id(is_postgres(session.get_bind()), skip), {"ids": distinct(ids)})
    return [Due(*row) for row in rows]


WRITTEN = (
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_error",
    "delivered_at",
)


@cache
def _write(postgres: bool) -> Executable:
    values = {name: bindparam(f"new_{name}", type_=D[name].type) for name in WRITTEN}
    return update(deliveries).where(among(D.id, "ids", postgres=postgres)).values(values)


def write(session: Session, rows: Iterable[Due]) -> None:
    """Write back what changed. Rows changed alike share one UPDATE (a batch of claims, or of
    2xx answers, is one statement) and all attempts go in one INSERT."""
    alike: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    attempts: list[dict[str, Any]] = []
    for row in rows:
        if row.changed:
            alike[tuple(getattr(row, name) for name in WRITTEN)].append(row.id)
            attempts += row.attempt_log
    if alike:
        statement = _write(is_postgres(session.get_bind()))
    for state, ids in alike.items():
        values = {f"new_{name}": value for name, value in zip(WRITTEN, state, strict=True)}
        session.execute(statement, {"ids": distinct(ids), **values})
    if attempts:
        insert_many(session, attempt_table, attempts)


def attempt_row(
    delivery_id: str, *, at: datetime, status_code: int | None, ms: int, error: str | None
) -> dict[str, Any]:
    """A delivery_attempts row, to insert."""
    return {
        "id": new_id(),
        "delivery_id": delivery_id,
        "attempted_at": at,
        "status_code": status_code,
        "duration_ms": ms,
        "error": error,
    }


def log_attempt(
    row: Due, *, at: datetime, status_code: int | None, ms: int, error: str | None
) -> None:
    row.attempt_log.append(attempt_row(row.id, at=at, status_code=status_code, ms=ms, error=error))
    row.changed = True


def note_lost(row: Due, *, now: datetime) -> None:
    """A lease ran out with nothing recorded: the worker died mid-attempt. Say so, retry now."""
    log_attempt(row, at=now, status_code=None, ms=0, error=LOST)
    row.change(status=DeliveryStatus.failed, last_status_code=None, last_error=LOST)
