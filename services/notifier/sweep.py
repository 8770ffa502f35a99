"""The sweep (beat, every few seconds): hand out the deliveries whose next attempt is due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from services.notifier.dues import DUE_COLUMNS, AnyRows, D, locked, note_lost, write
from services.notifier.ledger import IN_FLIGHT_PER_ENDPOINT, E, lease_length, leases_held
from services.notifier.status import OPEN_STATUSES, DeliveryStatus
from shared.db import is_postgres

SWEEP_BATCH = 500


def _due(now: datetime, limit: int, *, postgres: bool) -> AnyRows:
    if not postgres:  # SQLite (no LATERAL): endpoints whose slots are all taken are skipped
        full = select(E.id).where(leases_held(now) >= IN_FLIGHT_PER_ENDPOINT)
        return (
            select(*DUE_COLUMNS)
            .where(
                D.status.in_(OPEN_STATUSES), D.next_attempt_at <= now, D.endpoint_id.not_in(full)
            )
            .order_by(D.next_attempt_at)
            .limit(limit)
        )
    # PostgreSQL: each endpoint's oldest due deliveries, no more than its free slots (what its
    # leases in flight leave of IN_FLIGHT_PER_ENDPOINT). An endpoint being sent is fed by the
    # processes sending it, as each answer frees a slot (sender.py); handing out more of its
    # deliveries would only have them stamped, passed over and written back due.
    rooms = select(E.id, (IN_FLIGHT_PER_ENDPOINT - leases_held(now)).label("room")).subquery(
        "rooms"
    )
    per_endpoint = (
        select(D.id, D.next_attempt_at)
        .where(
            D.endpoint_id == rooms.c.id,
            D.status.in_(OPEN_STATUSES),
            D.next_attempt_at <= now,
        )
        .order_by(D.next_attempt_at)
        .limit(func.greatest(rooms.c.room, 0))
        .lateral("due")
    )
    oldest = (
        select(per_endpoint.c.id)
        .select_from(rooms)
        .join(per_endpoint, true())
        .order_by(per_endpoint.c.next_attempt_at)
        .limit(limit)
    )
    # (locked here, not in the lateral: only the rows handed out; the conditions are checked
    # again on the locked row, so a row another sweep took meanwhile is left out)
    return (
        select(*DUE_COLUMNS)
        .where(D.id.in_(oldest), D.status.in_(OPEN_STATUSES), D.next_attempt_at <= now)
        .order_by(D.next_attempt_at)
    )


def dispatch_due(
    session: Session, *, now: datetime, limit: int = SWEEP_BATCH
) -> tuple[datetime, list[str]]:
    """Due deliveries, oldest first, no more of an endpoint than its free slots. Each is
    stamped until the returned stamp, which its task presents to claim it: a row is handed to
    one task at a time, and a lost task's rows simply come due again when the stamp passes.
    Leases that ran out are recorded as lost attempts."""
    rows = locked(session, _due(now, limit, postgres=is_postgres(session.get_bind())))
    stamp = now + lease_length()
    for row in rows:
        if row.status == DeliveryStatus.sending:
            note_lost(row, now=now)
        row.change(next_attempt_at=stamp)
    write(session, rows)
    return stamp, [row.id for row in rows]
