"""Offer and support state machines."""

import pytest

from shared.domain.lifecycle import (
    InvalidTransition,
    assignment_transition,
    contact_needed_after,
    offer_transition,
)


def test_open_offer_can_be_accepted_declined_expired_or_cancelled() -> None:
    assert offer_transition("open", "accept") == "accepted"
    assert offer_transition("open", "decline") == "declined"
    assert offer_transition("open", "expire") == "expired"
    assert offer_transition("accepted", "move_in") == "moved_in"


@pytest.mark.parametrize(
    ("state", "action"),
    [("declined", "accept"), ("open", "move_in"), ("expired", "decline"), ("moved_in", "cancel")],
)
def test_wrong_state_is_refused(state: str, action: str) -> None:
    with pytest.raises(InvalidTransition):
        offer_transition(state, action)


def test_support_steps_down_and_resumes() -> None:
    assert assignment_transition("active", "step_down") == "stepped_down"
    assert assignment_transition("stepped_down", "resume") == "active"
    with pytest.raises(InvalidTransition):
        assignment_transition("pending_capacity", "acknowledge")


def test_three_expiries_in_a_row_flag_contact_needed() -> None:
    assert not contact_needed_after(2)
    assert contact_needed_after(3)
