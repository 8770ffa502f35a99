"""Consumers record that they acted on an event, so the relay re-sends only unfinished work."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.domain.events import Consumer, consumers_of
from shared.models import EventConsumption, OutboxEvent, utcnow


def already_consumed(session: Session, event_id: str, consumer: Consumer) -> bool:
    """True if this consumer finished this event before (a redelivered task)."""
    return session.get(EventConsumption, (event_id, consumer.value)) is not None


def record_consumption(session: Session, event: OutboxEvent, consumer: Consumer) -> None:
    """Mark the event done for this consumer; done for all marks it processed.

    With several consumers the event row is locked first so two finishing at once cannot both
    miss each other's row (each would count only its own under READ COMMITTED).
    """
    if consumers_of(event.topic) == (consumer,):  # the only one: done, nothing to count
        session.add(EventConsumption(event_id=event.id, consumer=consumer.value))
        session.execute(
            update(OutboxEvent).where(OutboxEvent.id == event.id).values(processed_at=utcnow())
        )
        return
    session.execute(select(OutboxEvent.id).where(OutboxEvent.id == event.id).with_for_update())
    session.add(EventConsumption(event_id=event.id, consumer=consumer.value))
    session.flush()
    done = session.scalar(
        select(func.count())
        .select_from(EventConsumption)
        .where(EventConsumption.event_id == event.id)
    )
    if done is not None and done >= len(consumers_of(event.topic)):
        session.execute(
            update(OutboxEvent).where(OutboxEvent.id == event.id).values(processed_at=utcnow())
        )
