"""The outbox relay: re-publish what was never published, or never finished by a consumer."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.domain.events import Consumer, consumers_of
from shared.models import EventConsumption, OutboxEvent
from shared.outbox import EventRef, send

BATCH = 500


def claim(session: Session, query: object) -> list[OutboxEvent]:
    """Rows claimed so relays on several workers never send the same batch at once."""
    statement = query.limit(BATCH).with_for_update(skip_locked=True)  # type: ignore[attr-defined]
    return list(session.scalars(statement))


def relay_unpublished(session: Session, *, now: datetime, older_than: timedelta) -> int:
    """Publish events whose transaction committed but whose publish never happened."""
    events = claim(
        session,
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None), OutboxEvent.created_at < now - older_than)
        .order_by(OutboxEvent.created_at),
    )
    # (not marked resent: no consumer started these, and a batch marked so would be split)
    sent = send([EventRef(event.id, event.topic, event.request_id) for event in events])
    if sent:
        session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(sent)).values(published_at=now)
        )
    return len(sent)


def relay_unfinished(
    session: Session, *, now: datetime, older_than: timedelta = timedelta(minutes=3)
) -> int:
    """Re-send to consumers that never recorded an event (message lost, worker killed)."""
    events = claim(
        session,
        select(OutboxEvent)
        .where(
            OutboxEvent.processed_at.is_(None),
            OutboxEvent.published_at.is_not(None),
            OutboxEvent.published_at < now - older_than,
        )
        .order_by(OutboxEvent.created_at),
    )
    if not events:
        return 0
    done: dict[str, set[str]] = defaultdict(set)
    for event_id, consumer in session.execute(
        select(EventConsumption.event_id, EventConsumption.consumer).where(
            EventConsumption.event_id.in_([event.id for event in events])
        )
    ):
        done[event_id].add(consumer)
    resent = 0
    for event in events:
        missing = [c for c in consumers_of(event.topic) if c.value not in done[event.id]]
        if not missing:
            event.processed_at = now  # every consumer finished; only the mark was missing
            continue
        for consumer in missing:
            ref = EventRef(event.id, event.topic, event.request_id)
            resent += len(send([ref], only=Consumer(consumer), resent=True))
        event.published_at = now
    return resent
