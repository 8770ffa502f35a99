"""Consumers record that they acted on an event, so the relay re-sends only unfinished work.

Every task runs these, so their statements are built once (with bound parameters), not per call.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from shared.domain.events import Consumer, consumers_of
from shared.models import EventConsumption, OutboxEvent, utcnow

_consumptions: Any = EventConsumption.__table__
_events: Any = OutboxEvent.__table__

_CONSUMED = select(_consumptions.c.event_id).where(
    _consumptions.c.event_id.in_(bindparam("event_ids", expanding=True)),
    _consumptions.c.consumer == bindparam("consumer"),
)
_RECORD = insert(_consumptions)
_LOCK_EVENT = select(_events.c.id).where(_events.c.id == bindparam("event_id")).with_for_update()
_COUNT = (
    select(func.count())
    .select_from(_consumptions)
    .where(_consumptions.c.event_id == bindparam("event_id"))
)
_PROCESSED = (
    update(_events)
    .where(_events.c.id == bindparam("event_id"))
    .values(processed_at=bindparam("now"))
)


def consumed(session: Session, event_ids: list[str], consumer: Consumer) -> set[str]:
    """Those of the events this consumer finished before (a redelivered task)."""
    found = session.scalars(_CONSUMED, {"event_ids": event_ids, "consumer": consumer.value})
    return set(found)


def already_consumed(session: Session, event_id: str, consumer: Consumer) -> bool:
    """True if this consumer finished this event before (a redelivered task)."""
    return bool(consumed(session, [event_id], consumer))


def record_consumption(session: Session, event: Any, consumer: Consumer) -> None:
    """Mark the event (anything with `id` and `topic`) done for this consumer; done for all
    marks it processed.

    With several consumers the event row is locked first so two finishing at once cannot both
    miss each other's row (each would count only its own under READ COMMITTED).
    """
    now = utcnow()
    this = {"event_id": event.id}
    several = consumers_of(event.topic) != (consumer,)
    if several:
        session.execute(_LOCK_EVENT, this)
    session.execute(_RECORD, {**this, "consumer": consumer.value, "processed_at": now})
    if several and (session.scalar(_COUNT, this) or 0) < len(consumers_of(event.topic)):
        return
    session.execute(_PROCESSED, {**this, "now": now})
