"""Consumers record that they acted on an event, so the relay re-sends only unfinished work.

Every task runs these, so their statements are built once (with bound parameters), not per call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.db import is_postgres
from shared.domain.events import MATCHING_TOPICS, Consumer, consumers_of
from shared.models import EventConsumption, OutboxEvent, utcnow

_consumptions: Any = EventConsumption.__table__
_events: Any = OutboxEvent.__table__

_CONSUMED = select(_consumptions.c.event_id).where(
    _consumptions.c.event_id.in_(bindparam("event_ids", expanding=True)),
    _consumptions.c.consumer == bindparam("consumer"),
)
_LOCK_EVENTS = (
    select(_events.c.id)
    .where(_events.c.id.in_(bindparam("event_ids", expanding=True)))
    .order_by(_events.c.id)
    .with_for_update()
)
UNFINISHED_AT_ONCE = 500
_UNFINISHED_TRIGGERS = (
    select(
        _events.c.id,
        _events.c.topic,
        _events.c.request_id,
        _events.c.payload["referral_id"].as_string().label("referral_id"),
    )
    .where(
        _events.c.processed_at.is_(None),  # (a partial index: few rows)
        _events.c.region == bindparam("region"),
        _events.c.topic.in_(sorted(MATCHING_TOPICS)),
        ~select(_consumptions.c.event_id)
        .where(
            _consumptions.c.event_id == _events.c.id,
            _consumptions.c.consumer == Consumer.matcher.value,
        )
        .exists(),
    )
    .order_by(_events.c.created_at)
    .limit(UNFINISHED_AT_ONCE)
)
_PROCESSED = (
    update(_events)
    .where(_events.c.id.in_(bindparam("event_ids", expanding=True)))
    .values(
        processed_at=bindparam("now"),
        # (an event its consumers finished was published, whether or not its publisher got
        # to mark it yet: the notifier acts on the events its fan-out emits at once)
        published_at=func.coalesce(_events.c.published_at, bindparam("now")),
    )
)
_PROCESSED_WHEN_ALL = _PROCESSED.where(
    select(func.count())
    .select_from(_consumptions)
    .where(_consumptions.c.event_id == _events.c.id)
    .scalar_subquery()
    >= bindparam("needed")
)


@cache
def _record(postgres: bool) -> Any:
    """The consumption records, one per id of `event_ids`; one already there (written
    meanwhile by a round or a task that took the same event) is left as it is. On PostgreSQL
    one statement over the ids as one array, not one round of the protocol per event."""
    if not postgres:
        return sqlite_insert(_consumptions).on_conflict_do_nothing()
    ids = func.unnest(bindparam("event_ids", type_=ARRAY(String))).table_valued("event_id")
    new = select(
        ids.render_derived(name="new").c.event_id,
        bindparam("consumer", type_=String),
        bindparam("now", type_=_consumptions.c.processed_at.type),
    )
    columns = ["event_id", "consumer", "processed_at"]
    return postgresql_insert(_consumptions).from_select(columns, new).on_conflict_do_nothing()


def consumed(session: Session, event_ids: list[str], consumer: Consumer) -> set[str]:
    """Those of the events this consumer finished before (a redelivered task)."""
    found = session.scalars(_CONSUMED, {"event_ids": event_ids, "consumer": consumer.value})
    return set(found)


def unfinished_triggers(session: Session, region: str) -> list[Any]:
    """The region's events (id, topic, request_id, and the referral_id they name if any) that
    call for a round and the matcher has not recorded yet; at most UNFINISHED_AT_ONCE, oldest
    first."""
    return list(session.execute(_UNFINISHED_TRIGGERS, {"region": region}))


def lock_events(session: Session, event_ids: list[str]) -> None:
    """Lock the events' rows in id order. Every transaction that records several consumptions
    (or marks several events published) takes its event locks this way, first, so no two wait
    for each other in a cycle."""
    if event_ids:
        session.execute(_LOCK_EVENTS, {"event_ids": sorted(set(event_ids))}).all()


def all_consumed(session: Session, event_ids: list[str] | str, consumer: Consumer) -> bool:
    """True if this consumer finished every one of these events before (a task's list, or a
    single id as older tasks carry it)."""
    ids = [event_ids] if isinstance(event_ids, str) else event_ids
    return len(consumed(session, ids, consumer)) == len(set(ids))


def record_consumption(session: Session, event: Any, consumer: Consumer) -> None:
    """Mark the event (anything with `id` and `topic`) done for this consumer; see
    record_consumptions."""
    record_consumptions(session, [event], consumer)


def record_consumptions(session: Session, events: Sequence[Any], consumer: Consumer) -> None:
    """Mark the events (anything with `id` and `topic`) done for this consumer; an event done
    for all its consumers is marked processed (and published, if it was not marked so yet).

    The events are locked first (in id order, lock_events), so two consumers finishing at
    once cannot both miss each other's record (each would count only its own under READ
    COMMITTED)."""
    if not events:
        return
    now = utcnow()
    several: dict[int, list[str]] = defaultdict(list)  # by how many consumers must finish
    alone: list[str] = []
    for event in events:
        consumers = consumers_of(event.topic)
        if consumers == (consumer,):
            alone.append(event.id)
        else:
            several[len(consumers)].append(event.id)
    lock_events(session, [event.id for event in events])
    if is_postgres(session.get_bind()):
        ids = list(dict.fromkeys(event.id for event in events))
        session.execute(_record(True), {"event_ids": ids, "consumer": consumer.value, "now": now})
    else:
        session.execute(
            _record(False),
            [
                {"event_id": event.id, "consumer": consumer.value, "processed_at": now}
                for event in events
            ],
        )
    for needed, ids in several.items():
        session.execute(_PROCESSED_WHEN_ALL, {"event_ids": ids, "needed": needed, "now": now})
    if alone:
        session.execute(_PROCESSED, {"event_ids": alone, "now": now})
