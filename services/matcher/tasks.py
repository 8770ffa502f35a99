"""Matcher tasks: thin shells that open a transaction and call the round code."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.orm import Session

from services.matcher.expiry import expire_due_offers
from services.matcher.relay import relay_unfinished, relay_unpublished
from services.matcher.rounds import StaleRound, record_triggers, request_round, serve
from shared.config import get_settings
from shared.consumption import all_consumed, consumed, lock_events
from shared.domain.events import Consumer
from shared.models import OutboxEvent, RegionMatching, utcnow
from shared.queue import TaskName, celery_app
from shared.redelivery import forget_stale
from shared.worker import in_transaction

log = logging.getLogger(__name__)

MAX_PLANS = 50  # a round that keeps seeing concurrent changes plans again, this many times
_IDS: BindParameter[str] = bindparam("event_ids", expanding=True)
_REGIONS = select(OutboxEvent.id, OutboxEvent.region).where(OutboxEvent.id.in_(_IDS))
_TOPICS = select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.request_id).where(
    OutboxEvent.id.in_(_IDS)
)


def note_triggers(session: Session, event_ids: list[str]) -> dict[str, str]:
    """Record that the events' regions need a round: the events to finish after it (those
    not finished before, by a redelivered task, and with a region), each with its region."""
    done = consumed(session, event_ids, Consumer.matcher)
    pending = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in done]
    if not pending:
        return {}
    found = dict(session.execute(_REGIONS, {"event_ids": pending}).all())
    noted = {event_id: region for event_id in pending if (region := found.get(event_id))}
    for region in sorted(set(noted.values())):
        request_round(session, region)
    return noted


def finish(session: Session, event_ids: list[str]) -> None:
    """Record the events as done by the matcher (their rows locked in id order first), and
    forward those the notifier acts on too (rounds.record_triggers)."""
    lock_events(session, event_ids)  # (before the check: a redelivered twin waits, then sees)
    done = consumed(session, event_ids, Consumer.matcher)
    events = session.execute(_TOPICS, {"event_ids": event_ids}).all()
    record_triggers(session, [e for e in events if e.id not in done])


def drain(region: str) -> frozenset[str]:
    """Serve the region's outstanding round requests: one round serves every request made
    before it started; the trigger events the round recorded for the matcher (none if no
    round was needed). A request made during the round is served by its own task, which
    waits for this round's lock (or, if that task was lost, by the relay's re-send or
    sweep_regions), so nobody needs to look again after the round."""
    settings = get_settings()
    for _ in range(MAX_PLANS):
        try:
            recorded = in_transaction(
                serve, region, now=utcnow(), ttl_hours=settings.offer_ttl_hours
            )
            return recorded or frozenset()
        except StaleRound:
            log.info("round saw a concurrent change; planning again", extra={"region": region})
    return frozenset()


def _matched(session: Session, event_ids: list[str] | str) -> bool:
    return all_consumed(session, event_ids, Consumer.matcher)


@celery_app.task(name=TaskName.match_event, splits=True, done=staticmethod(_matched))
def match_event(event_ids: list[str] | str) -> None:
    """Changes happened (the events published together): match their regions now (rule 4),
    coalescing with other triggers; one round per region for the whole batch. The transaction
    that records an event for the matcher forwards it to the notifier if the notifier acts on
    it too (rounds.record_triggers). A batch restarted after its worker was lost is sent back
    as one task per event (shared/redelivery.py), so a poison event dies alone."""
    ids = [event_ids] if isinstance(event_ids, str) else event_ids
    noted = in_transaction(note_triggers, ids)
    failure: Exception | None = None
    recorded: set[str] = set()
    for region in sorted(set(noted.values())):
        try:
            recorded |= drain(region)
        except Exception as error:  # the other regions still match; the relay re-sends this
            log.warning("a region's round failed", extra={"region": region}, exc_info=True)
            failure = failure or error
            noted = {event_id: at for event_id, at in noted.items() if at != region}
    unrecorded = [event_id for event_id in noted if event_id not in recorded]
    if unrecorded:  # (served by a round that began before they were noted, or failed)
        in_transaction(finish, unrecorded)
    if failure is not None:
        raise failure


@celery_app.task(name=TaskName.match_region)
def match_region(region: str) -> None:
    """Serve any outstanding round request of a region."""
    drain(region)


def behind_regions(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(RegionMatching.region).where(RegionMatching.requested > RegionMatching.completed)
        )
    )


@celery_app.task(name=TaskName.sweep_regions)
def sweep_regions() -> None:
    """Backstop: a region whose request was never served (its worker died) gets a round."""
    for region in in_transaction(behind_regions):
        celery_app.send_task(TaskName.match_region, args=[region])


@celery_app.task(name=TaskName.expire_offers)
def expire_offers() -> None:
    """Lapse offers past their expiry time."""
    in_transaction(expire_due_offers, now=utcnow())


@celery_app.task(name=TaskName.relay_outbox)
def relay_outbox() -> None:
    """Re-publish events left unpublished, or unfinished by a consumer."""
    settings = get_settings()
    unpublished = timedelta(seconds=settings.relay_after_seconds)
    unfinished = timedelta(seconds=settings.relay_unfinished_after_seconds)
    in_transaction(relay_unpublished, now=utcnow(), older_than=unpublished)
    in_transaction(relay_unfinished, now=utcnow(), older_than=unfinished)
    in_transaction(forget_stale, now=utcnow())
