"""Statements both the API (async) and the workers (sync) run."""

from __future__ import annotations

from sqlalchemy import Select, select

from shared.domain.vocabulary import OfferStatus
from shared.models import Offer, Unit

PLACED = (OfferStatus.open, OfferStatus.accepted, OfferStatus.moved_in)


def placed_unit(referral_id: str) -> Select[Unit]:
    """The unit the person is offered, has accepted or lives in (their latest placement)."""
    return (
        select(Unit)
        .join(Offer, Offer.unit_id == Unit.id)
        .where(Offer.referral_id == referral_id, Offer.status.in_(PLACED))
        .order_by(Offer.created_at.desc())
        .limit(1)
    )
