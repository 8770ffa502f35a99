"""Rule 7, the home is kept: move-in, absences that never end a tenancy, and ending one."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from shared.domain.events import Topic
from shared.domain.lifecycle import InvalidTransition, offer_transition
from shared.domain.offers import EventSpec, OfferLike, ReferralLike, UnitLike
from shared.domain.vocabulary import ReferralStatus, UnitStatus


class TenancyStatus(StrEnum):
    active = "active"
    ended = "ended"


class EndReason(StrEnum):
    moved_on = "moved_on"
    abandoned = "abandoned"
    evicted = "evicted"
    deceased = "deceased"
    other = "other"


class AbsenceKind(StrEnum):
    hospital = "hospital"
    prison = "prison"
    other = "other"


class TenancyLike(Protocol):
    id: str
    unit_id: str
    referral_id: str
    status: str
    ended_on: date | None
    end_reason: str | None
    updated_at: datetime


def move_in(
    *, offer: OfferLike, referral: ReferralLike, unit: UnitLike, on: date, now: datetime
) -> list[EventSpec]:
    """The person moved in: housed, the unit occupied. The caller creates the tenancy row."""
    offer.status = offer_transition(offer.status, "move_in")
    offer.updated_at = now
    referral.status = ReferralStatus.housed
    referral.version += 1
    referral.updated_at = now
    unit.status = UnitStatus.occupied
    unit.version += 1
    unit.updated_at = now
    return []


def started(tenancy: TenancyLike) -> EventSpec:
    """The tenancy.started event, once the tenancy row has its id."""
    return EventSpec(
        Topic.tenancy_started,
        {"tenancy_id": tenancy.id, "referral_id": tenancy.referral_id, "unit_id": tenancy.unit_id},
    )


def end(
    *, tenancy: TenancyLike, unit: UnitLike, reason: EndReason, on: date, now: datetime
) -> list[EventSpec]:
    """Only this frees the unit (absences never do); it is matched again at once."""
    if tenancy.status != TenancyStatus.active:
        raise InvalidTransition("tenancy", tenancy.status, "end")
    tenancy.status = TenancyStatus.ended
    tenancy.ended_on = on
    tenancy.end_reason = reason
    tenancy.updated_at = now
    unit.status = UnitStatus.available
    unit.version += 1
    unit.updated_at = now
    payload = {
        "tenancy_id": tenancy.id,
        "referral_id": tenancy.referral_id,
        "unit_id": unit.id,
        "reason": reason.value,
    }
    return [
        EventSpec(Topic.tenancy_ended, payload),
        EventSpec(Topic.unit_available, {"unit_id": unit.id}),
    ]
