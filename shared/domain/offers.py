"""Rule 5, choice without penalty: what accepting, declining, expiring or cancelling changes.

Functions take the offer, the person and the unit (ORM rows or anything shaped like them), set
their new states and return the events to record. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from shared.domain.events import Topic
from shared.domain.lifecycle import contact_needed_after, offer_transition
from shared.domain.vocabulary import ReferralStatus, UnitStatus


class OfferLike(Protocol):
    id: str
    referral_id: str
    unit_id: str
    status: str
    decline_reason: str | None
    updated_at: datetime


class ReferralLike(Protocol):
    id: str
    status: str
    expiries_in_a_row: int
    contact_needed: bool
    version: int
    updated_at: datetime


class UnitLike(Protocol):
    id: str
    status: str
    version: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event to write to the outbox."""

    topic: Topic
    payload: dict[str, Any]


Closing = Literal["decline", "expire", "cancel"]
CLOSING_TOPICS = {
    "decline": Topic.offer_declined,
    "expire": Topic.offer_expired,
    "cancel": Topic.offer_cancelled,
}


def _ids(offer: OfferLike) -> dict[str, Any]:
    return {"offer_id": offer.id, "referral_id": offer.referral_id, "unit_id": offer.unit_id}


def accept(*, offer: OfferLike, referral: ReferralLike, now: datetime) -> list[EventSpec]:
    """The person said yes: the home is theirs to move into."""
    offer.status = offer_transition(offer.status, "accept")
    offer.updated_at = now
    referral.status = ReferralStatus.accepted
    referral.expiries_in_a_row = 0
    referral.contact_needed = False
    referral.version += 1
    referral.updated_at = now
    return [EventSpec(Topic.offer_accepted, _ids(offer))]


def close(
    *,
    offer: OfferLike,
    referral: ReferralLike,
    unit: UnitLike,
    action: Closing,
    now: datetime,
    reason: str | None = None,
) -> list[EventSpec]:
    """Decline, expiry or cancellation: no penalty; the person keeps their place, the unit frees.

    A declined unit is never offered to that person again (eligibility reads declined offers).
    Three expiries in a row flag that outreach should find the person.
    """
    offer.status = offer_transition(offer.status, action)
    offer.updated_at = now
    if action == "decline":
        offer.decline_reason = reason
    if referral.status in (ReferralStatus.offered, ReferralStatus.accepted):
        referral.status = ReferralStatus.waiting
    if action == "expire":
        referral.expiries_in_a_row += 1
        referral.contact_needed = contact_needed_after(referral.expiries_in_a_row)
    elif action == "decline":
        referral.expiries_in_a_row = 0
        referral.contact_needed = False
    referral.version += 1
    referral.updated_at = now
    payload = _ids(offer)
    if reason:
        payload["reason"] = reason
    events = [EventSpec(CLOSING_TOPICS[action], payload)]
    if unit.status == UnitStatus.offered:
        unit.status = UnitStatus.available
        unit.version += 1
        unit.updated_at = now
        events.append(EventSpec(Topic.unit_available, {"unit_id": unit.id}))
    return events
