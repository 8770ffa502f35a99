"""Matcher tasks: thin shells that open a transaction and call the round code."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.matcher.expiry import expire_due_offers
from services.matcher.relay import relay_unfinished, relay_unpublished
from services.matcher.rounds import StaleRound, request_round, serve_request
from shared.config import get_settings
from shared.consumption import already_consumed, record_consumption
from shared.domain.events import Consumer
from shared.models import OutboxEvent, RegionMatching, utcnow
from shared.queue import TaskName, celery_app
from shared.redelivery import forget_stale
from shared.worker import in_transaction

log = logging.getLogger(__name__)

MAX_PLANS = 50  # a round that keeps seeing concurrent changes plans again, this many times


def note_trigger(session: Session, event_id: str) -> str | None:
    """Record that the event's region needs a round; None if nothing to do."""
    if already_consumed(session, event_id, Consumer.matcher):
        return None
    event = session.get(OutboxEvent, event_id)
    if event is None or event.region is None:
        return None
    request_round(session, event.region)
    return event.region


def finish(session: Session, event_id: str) -> None:
    event = session.get(OutboxEvent, event_id)
    if event is not None and not already_consumed(session, event_id, Consumer.matcher):
        record_consumption(session, event, Consumer.matcher)


def drain(region: str) -> bool:
    """Serve the region's outstanding round requests: one round serves every request made
    before it started; whether a round ran. A request made during the round is served by its
    own task, which waits for this round's lock (or, if that task was lost, by the relay's
    re-send or sweep_regions), so nobody needs to look again after the round."""
    settings = get_settings()
    for _ in range(MAX_PLANS):
        try:
            return in_transaction(
                serve_request, region, now=utcnow(), ttl_hours=settings.offer_ttl_hours
            )
        except StaleRound:
            log.info("round saw a concurrent change; planning again", extra={"region": region})
    return False


@celery_app.task(name=TaskName.match_event)
def match_event(event_id: str) -> None:
    """A change happened: match its region now (rule 4), coalescing with other triggers."""
    region = in_transaction(note_trigger, event_id)
    if region is not None:
        drain(region)
        in_transaction(finish, event_id)


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
