"""Write events beside the facts; after commit, hand their ids to the consumers' queues."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from shared import logs
from shared.domain.events import Consumer, Topic, consumers_of, published_to
from shared.models import OutboxEvent, new_id, utcnow
from shared.queue import RESENT, TaskName, celery_app

log = logging.getLogger(__name__)

PENDING_EVENTS = "housingfirst.pending_events"
FORWARD_EVENTS = "housingfirst.forward_events"
CONSUMER_TASKS = {Consumer.matcher: TaskName.match_event, Consumer.notifier: TaskName.notify_event}
BATCH = 50  # event ids per task at most


@dataclass(frozen=True, slots=True)
class EventRef:
    """What is needed to publish an event once its transaction has committed."""

    id: str
    topic: str
    request_id: str | None = None


def new_event(topic: Topic, *, region: str | None, payload: dict[str, Any]) -> OutboxEvent:
    """An outbox row to add in the same transaction as the fact it records."""
    return OutboxEvent(id=new_id(), topic=topic.value, region=region, payload=payload)


def emit(
    session: Session | AsyncSession, topic: Topic, *, region: str | None, payload: dict[str, Any]
) -> OutboxEvent:
    """Add an event to the session's transaction and remember it for publishing after commit."""
    event = OutboxEvent(**emit_row(session, topic, region=region, payload=payload))
    session.add(event)
    return event


def emit_row(
    session: Session | AsyncSession, topic: Topic, *, region: str | None, payload: dict[str, Any]
) -> dict[str, Any]:
    """As `emit`, for a Core insert: the event as column values, remembered for publishing."""
    ref, row = event_row(topic, region=region, payload=payload)
    session.info.setdefault(PENDING_EVENTS, []).append(ref)
    return row


def event_row(
    topic: Topic, *, region: str | None, payload: dict[str, Any]
) -> tuple[EventRef, dict[str, Any]]:
    """A new event as column values for a Core insert, and its reference to publish."""
    ref = EventRef(new_id(), topic.value, logs.request_id.get())
    return ref, {
        "id": ref.id,
        "topic": ref.topic,
        "region": region,
        "request_id": ref.request_id,
        "payload": payload,
        "created_at": utcnow(),
        "published_at": None,
    }


def take_pending(session: Session | AsyncSession) -> list[EventRef]:
    """The events emitted in the session since the last take (call right after commit)."""
    pending: list[EventRef] = session.info.pop(PENDING_EVENTS, [])
    return pending


def forward_after_commit(session: Session, events: Sequence[EventRef]) -> None:
    """Send these published events on to the notifier with the events this transaction
    emits, once it commits (shared/worker.py; see send's `forward`)."""
    if events:
        session.info.setdefault(FORWARD_EVENTS, []).extend(events)


def take_forwarded(session: Session) -> list[EventRef]:
    """The events to forward after this commit (forward_after_commit)."""
    forwarded: list[EventRef] = session.info.pop(FORWARD_EVENTS, [])
    return forwarded


def refs(events: Iterable[OutboxEvent]) -> list[EventRef]:
    """References to publish after commit."""
    return [EventRef(event.id, event.topic, event.request_id) for event in events]


def send(
    events: Sequence[EventRef],
    *,
    only: Consumer | None = None,
    resent: bool = False,
    forward: Sequence[EventRef] = (),
) -> list[str]:
    """Send the events' ids to their consumers' queues; returns the ids sent everywhere.
    Each consumer gets one task per BATCH of the events sent together (a request burst's
    referrals, a round's offers, a fan-out's assignments, what the relay re-sends), which it
    acts on together; a batch carries its first event's request id (of the first not
    forwarded, if any). One producer and, on Redis, one pipelined round trip for the whole
    batch (kombu's Producer.batch): a publish costs a fraction of a millisecond.

    `resent`: the events were sent before and a consumer may have started them (the relay's
    re-send of unfinished events), so their tasks count their starts (shared/redelivery.py).
    An event both consumers act on goes to the matcher, which passes it on as `forward`:
    sent to the notifier ahead of `events` (they came first), and not among the ids returned
    (it was published before)."""
    assert not forward or only is None, "forwarded events go with a publish to every consumer"
    batched: dict[Consumer, list[EventRef]] = defaultdict(list)
    if forward:
        batched[Consumer.notifier] = list(forward)
    for event in events:
        routes = published_to(event.topic) if only is None else consumers_of(event.topic)
        for consumer in routes:
            if only is None or consumer is only:
                batched[consumer].append(event)
    forwarded = {event.id for event in forward}
    messages = [
        (consumer, carried[at : at + BATCH])
        for consumer, carried in batched.items()
        for at in range(0, len(carried), BATCH)
    ]
    failed: set[str] = set()
    try:
        with celery_app.producer_or_acquire() as producer, producer.batch():
            for consumer, carried in messages:
                try:
                    _send_one(consumer, carried, producer, resent=resent, forwarded=forwarded)
                except Exception:  # the relay re-publishes what could not be sent now
                    log.warning("publish failed; relay will retry", extra={"events": len(carried)})
                    failed.update(event.id for event in carried)
    except Exception:  # the batch did not reach the broker: the relay re-publishes all of it
        log.warning(
            "publish failed; the relay will retry", extra={"events": len(events) + len(forward)}
        )
        return []
    return [event.id for event in events if event.id not in failed]


def _send_one(
    consumer: Consumer,
    events: list[EventRef],
    producer: Any,
    *,
    resent: bool,
    forwarded: set[str],
) -> None:
    ids = [event.id for event in events]
    # (the request of the first event sent for itself: forwarded ones only ride along)
    request_id = next(
        (event.request_id for event in events if event.id not in forwarded), events[0].request_id
    )
    headers: dict[str, Any] = {"request_id": request_id, "sent_at": time.time()}
    if resent:
        headers[RESENT] = True
    celery_app.send_task(CONSUMER_TASKS[consumer], args=[ids], headers=headers, producer=producer)


def warm_up_publishing() -> None:
    """Load the broker transport and its producer pool now, not on the first request (lazy
    imports under a burst of requests would hold every one of them up)."""
    try:
        with celery_app.producer_or_acquire():
            pass
    except Exception:  # no broker yet: the first publish connects, the relay covers failures
        log.warning("broker not reachable at startup; publishing will connect on first use")


def mark_published(session: Session, event_ids: Sequence[str]) -> None:
    """Record that events reached the broker (the caller commits)."""
    if event_ids:
        session.execute(MARK_PUBLISHED, {"event_ids": list(event_ids), "now": utcnow()})


# The rows are locked in id order first, as consumers lock them (shared/consumption.py), so a
# published mark never waits in a cycle with a consumer or a round finishing the same events.
_events: Any = OutboxEvent.__table__
MARK_PUBLISHED = (
    update(_events)
    .where(
        _events.c.id.in_(
            select(_events.c.id)
            .where(_events.c.id.in_(bindparam("event_ids", expanding=True)))
            .order_by(_events.c.id)
            .with_for_update()
        )
    )
    .values(published_at=bindparam("now"))
)


def emit_all(session: Session | AsyncSession, specs: Iterable[Any], *, region: str | None) -> None:
    """Emit each EventSpec returned by a domain function."""
    for spec in specs:
        emit(session, spec.topic, region=region, payload=spec.payload)
