"""Notifier tasks: support assignment on the first offer, webhook fan-out and delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notifier import delivery as webhook
from services.notifier.messages import audience, compose
from services.notifier.teams import assign_support
from shared.consumption import already_consumed, record_consumption
from shared.domain.events import Consumer, Topic
from shared.models import Delivery, OutboxEvent, Referral, Unit, WebhookEndpoint, utcnow
from shared.queue import TaskName, celery_app
from shared.worker import in_transaction

SWEEP_GRACE = timedelta(seconds=10)
SWEEP_BATCH = 500


def fan_out(session: Session, event_id: str) -> list[str]:
    """Act on an event once: side effects, then one delivery row per subscribed endpoint."""
    if already_consumed(session, event_id, Consumer.notifier):
        return []
    event = session.get(OutboxEvent, event_id)
    if event is None:
        return []
    if event.topic == Topic.offer_created:
        referral = session.get(Referral, event.payload["referral_id"])
        unit = session.get(Unit, event.payload["unit_id"])
        if referral is not None:
            assign_support(session, referral=referral, unit=unit)
    organizations = audience(session, event)
    endpoints = (
        session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.organization_id.in_(organizations),
                WebhookEndpoint.enabled.is_(True),
            )
        ).all()
        if organizations
        else []
    )
    existing = set(
        session.scalars(select(Delivery.endpoint_id).where(Delivery.event_id == event.id))
    )
    created: list[Delivery] = []
    for endpoint in endpoints:
        if event.topic in endpoint.events and endpoint.id not in existing:
            created.append(
                Delivery(
                    endpoint_id=endpoint.id,
                    event_id=event.id,
                    organization_id=endpoint.organization_id,
                    event_type=event.topic,
                    status="pending",
                    next_attempt_at=utcnow(),
                )
            )
    session.add_all(created)
    record_consumption(session, event, Consumer.notifier)
    session.flush()
    return [item.id for item in created]


LEASE = timedelta(seconds=webhook.TIMEOUT_SECONDS + 30)


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery taken for one attempt; its lease keeps other workers off meanwhile."""

    delivery_id: str
    url: str
    message: webhook.Message


def claim(
    session: Session, delivery_id: str, *, now: datetime, force: bool = False
) -> Claim | None:
    """Take a due delivery for one attempt (no lock is held while the request is in flight)."""
    item = session.get(Delivery, delivery_id, with_for_update=True, populate_existing=True)
    if item is None or item.status in ("delivered", "dead"):
        return None
    if not force and item.next_attempt_at is not None and item.next_attempt_at > now:
        return None
    endpoint = session.get(WebhookEndpoint, item.endpoint_id)
    event = session.get(OutboxEvent, item.event_id)
    if endpoint is None or event is None:
        return None
    if not endpoint.enabled:
        item.status, item.last_error, item.next_attempt_at = "dead", "endpoint disabled", None
        return None
    item.next_attempt_at = now + LEASE
    message = webhook.build_message(
        msg_id=f"msg_{item.id}",
        event_type=event.topic,
        timestamp=event.created_at,
        data=compose(session, event),
        secrets=[endpoint.secret],
    )
    return Claim(delivery_id=item.id, url=endpoint.url, message=message)


def record(session: Session, delivery_id: str, outcome: webhook.Outcome, *, now: datetime) -> None:
    """Record one attempt's outcome and schedule the next one, or mark the delivery dead."""
    item = session.get(Delivery, delivery_id, with_for_update=True, populate_existing=True)
    if item is None or item.status == "delivered":
        return
    item.attempts += 1
    item.last_status_code = outcome.status_code
    item.last_error = outcome.error
    if outcome.ok:
        item.status, item.delivered_at, item.next_attempt_at = "delivered", now, None
        return
    if outcome.disable_endpoint:
        endpoint = session.get(WebhookEndpoint, item.endpoint_id)
        if endpoint is not None:
            endpoint.enabled = False
            endpoint.disabled_reason = "receiver answered 410 Gone"
    retry_at = (
        None
        if outcome.permanent
        else webhook.next_attempt_at(attempts=item.attempts, now=now, outcome=outcome)
    )
    item.status = "failed" if retry_at else "dead"
    item.next_attempt_at = retry_at


def attempt(delivery_id: str, *, force: bool = False) -> None:
    """Claim, send outside any transaction, record: at least once, same webhook-id every time."""
    taken = in_transaction(claim, delivery_id, now=utcnow(), force=force)
    if taken is None:
        return
    outcome = webhook.send(taken.message, taken.url, now=utcnow())
    in_transaction(record, delivery_id, outcome, now=utcnow())


def due_deliveries(session: Session, *, now: datetime) -> list[str]:
    return list(
        session.scalars(
            select(Delivery.id)
            .where(
                Delivery.status.in_(("pending", "failed")),
                Delivery.next_attempt_at <= now - SWEEP_GRACE,
            )
            .order_by(Delivery.next_attempt_at)
            .limit(SWEEP_BATCH)
        )
    )


@celery_app.task(name=TaskName.notify_event)
def notify_event(event_id: str) -> None:
    """Fan an event out to its subscribers and send each delivery now."""
    for delivery_id in in_transaction(fan_out, event_id):
        celery_app.send_task(TaskName.deliver, args=[delivery_id])


@celery_app.task(name=TaskName.deliver)
def deliver(delivery_id: str) -> None:
    """One attempt of one delivery."""
    attempt(delivery_id)


@celery_app.task(name=TaskName.sweep_deliveries)
def sweep_deliveries() -> None:
    """Send the deliveries whose next attempt is due (retries live in the database)."""
    for delivery_id in in_transaction(due_deliveries, now=utcnow()):
        celery_app.send_task(TaskName.deliver, args=[delivery_id])
