"""Offers lapse after OFFER_TTL_HOURS: swept from database timestamps, never Celery ETAs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.domain import offers as offer_rules
from shared.domain.vocabulary import OfferStatus
from shared.models import Offer, Referral, Unit
from shared.outbox import emit_all

BATCH = 200


def expire_due_offers(session: Session, *, now: datetime) -> int:
    """Expire open offers past their time (no penalty); the units are matched again."""
    due_ids = list(
        session.scalars(
            select(Offer.id)
            .where(Offer.status == OfferStatus.open, Offer.expires_at <= now)
            .order_by(Offer.expires_at)
            .limit(BATCH)
        )
    )
    expired = 0
    for offer_id in due_ids:
        offer = session.scalar(
            select(Offer).where(Offer.id == offer_id).with_for_update(skip_locked=True)
        )
        if offer is None or offer.status != OfferStatus.open:
            continue  # answered meanwhile, or another sweeper has it
        unit = session.scalar(select(Unit).where(Unit.id == offer.unit_id).with_for_update())
        referral = session.scalar(
            select(Referral).where(Referral.id == offer.referral_id).with_for_update()
        )
        if unit is None or referral is None:
            continue
        events = offer_rules.close(
            offer=offer, referral=referral, unit=unit, action="expire", now=now
        )
        emit_all(session, events, region=offer.region)
        expired += 1
    return expired
