"""Matcher tasks: thin shells that open a transaction and call the round code."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.matcher.expiry import expire_due_offers
from services.matcher.regions import (
    regions_of,
    request_round,
    serve,
    serve_batch,
    serve_events,
)
from services.matcher.relay import relay_unfinished, relay_unpublished
from services.matcher.rounds import StaleRound
from shared.config import get_settings
from shared.consumption import all_consumed
from shared.domain.events import Consumer
from shared.models import RegionMatching, utcnow
from shared.queue import TaskName, celery_app
from shared.redelivery import forget_stale
from shared.worker import in_transaction

log = logging.getLogger(__name__)

MAX_PLANS = 50  # a round that keeps seeing concurrent changes plans again, this many times


def planned(work: Callable[[], object], region: str) -> None:
    """Run a transaction that plans a round of the region, again while it sees a concurrent
    change (StaleRound: rolled back, nothing written). If it never stops seeing one, the
    region's round is asked for (regions.request_round), for sweep_regions to serve within
    seconds."""
    for _ in range(MAX_PLANS):
        try:
            work()
            return
        except StaleRound:
            log.info("round saw a concurrent change; planning again", extra={"region": region})
    log.warning("round kept seeing concurrent changes; left to the sweep", extra={"region": region})
    in_transaction(request_round, region)


def drain(region: str) -> None:
    """Serve the region's outstanding round requests (one round serves every request made
    before it started)."""
    settings = get_settings()
    planned(
        lambda: in_transaction(serve, region, now=utcnow(), ttl_hours=settings.offer_ttl_hours),
        region,
    )


def match_in(region: str, event_ids: list[str]) -> None:
    """The round that events of one region call for, in a transaction of its own."""
    ttl_hours = get_settings().offer_ttl_hours
    planned(
        lambda: in_transaction(serve_events, region, event_ids, now=utcnow(), ttl_hours=ttl_hours),
        region,
    )


def _matched(session: Session, event_ids: list[str] | str) -> bool:
    return all_consumed(session, event_ids, Consumer.matcher)


@celery_app.task(name=TaskName.match_event, splits=True, done=staticmethod(_matched))
def match_event(event_ids: list[str] | str) -> None:
    """Changes happened (the events published together): match their regions now (rule 4).
    Each region's round runs in one transaction with the events' record for the matcher
    (regions.serve_events): none if a round another task ran meanwhile recorded them. The
    transaction that records an event for the matcher forwards it to the notifier if the
    notifier acts on it too (regions.record_triggers). A batch restarted after its worker was
    lost is sent back as one task per event (shared/redelivery.py), so a poison event dies
    alone."""
    ids = [event_ids] if isinstance(event_ids, str) else event_ids
    ttl_hours = get_settings().offer_ttl_hours
    try:  # (one region, the usual batch: everything in this one transaction)
        by_region = in_transaction(serve_batch, ids, now=utcnow(), ttl_hours=ttl_hours)
    except StaleRound:
        by_region = in_transaction(regions_of, ids)
    failure: Exception | None = None
    for region, region_ids in sorted(by_region.items()):
        try:
            match_in(region, region_ids)
        except Exception as error:  # the other regions still match; the relay re-sends this
            log.warning("a region's round failed", extra={"region": region}, exc_info=True)
            failure = failure or error
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
