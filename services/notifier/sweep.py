"""The sweep (beat, every few seconds): hand out the deliveries whose next attempt is due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.notifier.dues import DUE_COLUMNS, D, locked, note_lost, write
from services.notifier.ledger import IN_FLIGHT_PER_ENDPOINT, lease_length
from services.notifier.status import OPEN_STATUSES, DeliveryStatus

SWEEP_BATCH = 500


def dispatch_due(
    session: Session, *, now: datetime, limit: int = SWEEP_BATCH
) -> tuple[datetime, list[str]]:
    """Due deliveries, oldest first, skipping endpoints whose slots are all taken (their holders
    take the next ones as slots free). Each is stamped until the returned stamp, which its task
    presents to claim it: a row is handed to one task at a time, and a lost task's rows simply
    come due again when the stamp passes. Leases that ran out are recorded as lost attempts."""
    full = (
        select(D.endpoint_id)
        .where(D.status == DeliveryStatus.sending, D.next_attempt_at > now)
        .group_by(D.endpoint_id)
        .having(func.count() >= IN_FLIGHT_PER_ENDPOINT)
    )
    rows = locked(
        session,
        select(*DUE_COLUMNS)
        .where(
            D.status.in_(OPEN_STATUSES),
            D.next_attempt_at <= now,
            D.endpoint_id.not_in(full),
        )
        .order_by(D.next_attempt_at)
        .limit(limit),
    )
    stamp = now + lease_length()
    for row in rows:
        if row.status == DeliveryStatus.sending:
            note_lost(row, now=now)
        row.change(next_attempt_at=stamp)
    write(session, rows)
    return stamp, [row.id for row in rows]
