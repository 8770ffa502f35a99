"""State machines: which transitions are allowed (anything else is a 409 at the API)."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.vocabulary import AssignmentStatus, OfferStatus, ReferralStatus

EXPIRIES_BEFORE_CONTACT_NEEDED = 3


class InvalidTransition(Exception):
    """An action that the object's current state does not allow."""

    def __init__(self, kind: str, current: str, action: str) -> None:
        super().__init__(f"cannot {action} a {kind} that is {current}")
        self.kind = kind
        self.current = current
        self.action = action


OFFER_TRANSITIONS: dict[str, dict[OfferStatus, OfferStatus]] = {
    "accept": {OfferStatus.open: OfferStatus.accepted},
    "decline": {OfferStatus.open: OfferStatus.declined},
    "expire": {OfferStatus.open: OfferStatus.expired},
    "cancel": {
        OfferStatus.open: OfferStatus.cancelled,
        OfferStatus.accepted: OfferStatus.cancelled,
    },
    "move_in": {OfferStatus.accepted: OfferStatus.moved_in},
}

ASSIGNMENT_TRANSITIONS: dict[str, dict[AssignmentStatus, AssignmentStatus]] = {
    "assign": {AssignmentStatus.pending_capacity: AssignmentStatus.assigned},
    "acknowledge": {AssignmentStatus.assigned: AssignmentStatus.active},
    "step_down": {
        AssignmentStatus.assigned: AssignmentStatus.stepped_down,
        AssignmentStatus.active: AssignmentStatus.stepped_down,
    },
    "resume": {AssignmentStatus.stepped_down: AssignmentStatus.active},
}

LIVE_OFFER_STATUSES = frozenset({OfferStatus.open, OfferStatus.accepted})
# Assignments that hold one of a team's places; a stepped-down one frees its place.
HOLDS_A_PLACE = frozenset({AssignmentStatus.assigned, AssignmentStatus.active})
MATCHABLE_REFERRAL_STATUSES = frozenset({ReferralStatus.waiting})


def offer_transition(current: str, action: str) -> OfferStatus:
    """The offer's next status after an action, or InvalidTransition."""
    allowed = OFFER_TRANSITIONS[action]
    try:
        return allowed[OfferStatus(current)]
    except KeyError:
        raise InvalidTransition("offer", current, action) from None


def assignment_transition(current: str, action: str) -> AssignmentStatus:
    """The support assignment's next status after an action, or InvalidTransition."""
    allowed = ASSIGNMENT_TRANSITIONS[action]
    try:
        return allowed[AssignmentStatus(current)]
    except KeyError:
        raise InvalidTransition("support assignment", current, action) from None


def offer_expires_at(*, offered_at: datetime, ttl_hours: float) -> datetime:
    """When an open offer lapses (rule 5: expiry is no penalty)."""
    return offered_at + timedelta(hours=ttl_hours)


def contact_needed_after(expiries_in_a_row: int) -> bool:
    """A run of expiries flags that outreach should find the person."""
    return expiries_in_a_row >= EXPIRIES_BEFORE_CONTACT_NEEDED
