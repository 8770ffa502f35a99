"""When a region's round runs: the region's lock and its round requests, the round a task's
events call for (in the task's one transaction), and the record of the trigger events a round
saw. The round itself is services/matcher/rounds.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Executable, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.matcher.rounds import run_round
from shared.consumption import consumed, record_consumptions, unfinished_triggers
from shared.domain.events import FORWARDED_TOPICS, Consumer
from shared.models import OutboxEvent, RegionMatching
from shared.outbox import EventRef, forward_after_commit

# Every referral's round runs these: built once (with bound parameters), not per call.
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_events: Any = OutboxEvent.__table__
_REGIONS = select(_events.c.id, _events.c.region).where(_events.c.id.in_(_IDS))
_TRIGGERS = select(_events.c.id, _events.c.topic, _events.c.request_id).where(
    _events.c.id.in_(_IDS)
)
_states: Any = RegionMatching.__table__
_STATE = select(_states.c.requested, _states.c.completed).where(
    _states.c.region == bindparam("region")
)
_LOCK_REGION = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def lock_region(session: Session, region: str) -> None:
    """Serialize rounds of one region (PostgreSQL advisory lock; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_REGION, {"key": f"match:{region}"})


@cache
def _upsert_state(dialect: str, *, served: bool) -> Executable:
    """A region's matching state: a request more, or every request so far served."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    fresh: dict[str, Any] = {
        "region": bindparam("region"),
        "requested": 0 if served else 1,
        "completed": 0,
    }
    if served:
        fresh["last_round_at"] = bindparam("now")
        change = {"completed": _states.c.requested, "last_round_at": bindparam("now")}
    else:
        change = {"requested": _states.c.requested + 1}
    statement = module.insert(_states).values(fresh)
    upsert: Executable = statement.on_conflict_do_update(
        index_elements=[_states.c.region], set_=change
    )
    return upsert


def request_round(session: Session, region: str) -> None:
    """Ask for a round of the region (coalesced with any request not yet served)."""
    dialect = session.get_bind().dialect.name
    session.execute(_upsert_state(dialect, served=False), {"region": region})


def mark_served(session: Session, region: str, *, now: datetime) -> None:
    """Every round request of the region made so far is served by the round this transaction
    runs next: its reads come after this statement, so they see what those requests saw."""
    dialect = session.get_bind().dialect.name
    session.execute(_upsert_state(dialect, served=True), {"region": region, "now": now})


def record_triggers(session: Session, events: Sequence[Any]) -> None:
    """Record the events (with `id`, `topic`, `request_id`) as done by the matcher, and
    forward to the notifier, once this transaction commits, those it acts on too
    (shared/domain/events.py FORWARDED_TOPICS): after the matcher, ahead of what the round
    emitted, so a referral's webhook goes before its offer's. A worker lost between the
    commit and the send leaves them to the relay (relay_unfinished)."""
    record_consumptions(session, events, Consumer.matcher)
    forward_after_commit(
        session,
        [
            EventRef(event.id, event.topic, event.request_id)
            for event in events
            if event.topic in FORWARDED_TOPICS
        ],
    )


def serve_request(session: Session, region: str, *, now: datetime, ttl_hours: float) -> bool:
    """Run a round if one was requested since the last; False when the region is up to date."""
    return serve(session, region, now=now, ttl_hours=ttl_hours) is not None


def serve(
    session: Session, region: str, *, now: datetime, ttl_hours: float
) -> frozenset[str] | None:
    """As serve_request; the ids of the trigger events the round recorded, or None when no
    round was needed."""
    lock_region(session, region)
    state = session.execute(_STATE, {"region": region}).first()
    if state is None or state.completed >= state.requested:
        return None
    mark_served(session, region, now=now)
    return round_now(session, region, now=now, ttl_hours=ttl_hours)


def round_now(session: Session, region: str, *, now: datetime, ttl_hours: float) -> frozenset[str]:
    """A round of the region (its lock held), recording for the matcher the region's trigger
    events it has seen (those committed before it began): their own tasks, still queued behind
    it under load, then find their work done and run no round of their own. The ids of those
    events."""
    # Read before the round reads anything: each statement sees what had committed when it
    # began, so every fact these events record is visible to the round's reads after it.
    seen = unfinished_triggers(session, region)
    causes = {e.referral_id: e.request_id for e in seen if e.referral_id and e.request_id}
    run_round(session, region, now=now, ttl_hours=ttl_hours, causes=causes)
    record_triggers(session, seen)
    return frozenset(event.id for event in seen)


def regions_of(session: Session, event_ids: Sequence[str]) -> dict[str, list[str]]:
    """The events' ids by region, in the order given, each once (events without a region,
    which call for no round, are left out)."""
    found: dict[str, str | None] = dict(
        session.execute(_REGIONS, {"ids": list(event_ids)}).tuples().all()
    )
    by_region: dict[str, list[str]] = {}
    for event_id in dict.fromkeys(event_ids):
        if region := found.get(event_id):
            by_region.setdefault(region, []).append(event_id)
    return by_region


def serve_events(
    session: Session, region: str, event_ids: Sequence[str], *, now: datetime, ttl_hours: float
) -> None:
    """The round these events of one region call for (rule 4), in this transaction, with their
    record for the matcher: none if a round since recorded them all (under load, the round
    another task ran while this one waited for the region's lock)."""
    lock_region(session, region)
    done = consumed(session, list(event_ids), Consumer.matcher)
    pending = [event_id for event_id in event_ids if event_id not in done]
    if not pending:
        return
    mark_served(session, region, now=now)
    seen = round_now(session, region, now=now, ttl_hours=ttl_hours)
    unseen = [event_id for event_id in pending if event_id not in seen]
    if unseen:  # (past the UNFINISHED_AT_ONCE oldest, under a backlog: recorded all the same)
        record_triggers(session, session.execute(_TRIGGERS, {"ids": unseen}).all())


def serve_batch(
    session: Session, event_ids: Sequence[str], *, now: datetime, ttl_hours: float
) -> dict[str, list[str]]:
    """The events published together: if they are all of one region (the usual batch), their
    round in this transaction (serve_events), and nothing is returned; otherwise nothing is
    done here, and their ids are returned by region, for a transaction each."""
    by_region = regions_of(session, event_ids)
    if len(by_region) != 1:
        return by_region
    [(region, ids)] = by_region.items()
    serve_events(session, region, ids, now=now, ttl_hours=ttl_hours)
    return {}
