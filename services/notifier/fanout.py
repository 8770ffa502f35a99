"""Acting on an event once: support assignment at a first offer, then one delivery row per
enabled endpoint subscribed to the event's type, in the organizations the event concerns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notifier.messages import Rows, audience
from services.notifier.teams import assign_support
from shared.consumption import already_consumed, record_consumption
from shared.domain.events import WEBHOOK_TOPICS, Consumer, Topic
from shared.models import Delivery, OutboxEvent, Referral, Unit, WebhookEndpoint, utcnow


def subscribers(session: Session, event: OutboxEvent) -> list[WebhookEndpoint]:
    """Enabled endpoints of the concerned organizations that subscribed to this type."""
    if event.topic not in WEBHOOK_TOPICS:
        return []
    organizations = audience(Rows(session), event)
    if not organizations:
        return []
    endpoints = session.scalars(
        select(WebhookEndpoint)
        .where(
            WebhookEndpoint.organization_id.in_(organizations),
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(WebhookEndpoint.id)
    )
    return [endpoint for endpoint in endpoints if event.topic in endpoint.events]


def fan_out(session: Session, event_id: str, *, now: datetime | None = None) -> list[str]:
    """Side effects once, then the event's deliveries (due now); ids of the ones created."""
    if already_consumed(session, event_id, Consumer.notifier):
        return []
    event = session.get(OutboxEvent, event_id)
    if event is None:
        return []
    if event.topic == Topic.offer_created:
        referral = session.get(Referral, event.payload["referral_id"])
        unit = session.get(Unit, event.payload["unit_id"])
        if referral is not None:
            offer_id = event.payload.get("offer_id")
            assign_support(session, referral=referral, unit=unit, offer_id=offer_id)
    existing = set(
        session.scalars(select(Delivery.endpoint_id).where(Delivery.event_id == event.id))
    )
    due_at = now or utcnow()
    created = [
        Delivery(
            endpoint_id=endpoint.id,
            event_id=event.id,
            organization_id=endpoint.organization_id,
            event_type=event.topic,
            status="pending",
            attempts=0,
            next_attempt_at=due_at,
        )
        for endpoint in subscribers(session, event)
        if endpoint.id not in existing
    ]
    session.add_all(created)
    record_consumption(session, event, Consumer.notifier)
    session.flush()
    return [delivery.id for delivery in created]
