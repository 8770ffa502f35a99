"""Matching rounds against SQLite and PostgreSQL, run in-process as the worker runs them."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.matcher.regions import request_round, serve_request
from shared.domain.vocabulary import Role
from shared.models import MatchRound, Offer, OutboxEvent, RegionMatching, utcnow
from support import Stack


def test_given_a_unit_and_a_person_when_matched_then_one_offer_with_explanation(
    stack: Stack,
) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    unit = stack.post_unit(provider)
    referral = stack.post_referral(outreach)
    stack.match()
    with stack.session() as session:
        [offer] = session.scalars(select(Offer)).all()
        assert (offer.unit_id, offer.referral_id, offer.status) == (
            unit["id"],
            referral["id"],
            "open",
        )
        assert offer.explanation["inputs"]["person"]["vulnerability_score"] == 72
        assert offer.expires_at > utcnow()
        assert [e.topic for e in session.scalars(select(OutboxEvent))].count("offer.created") == 1
    seen = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
    assert seen["status"] == "offered"
    assert seen["offer"]["unit_id"] == unit["id"]
    assert (
        stack.client.get(f"/v1/units/{unit['id']}", headers=provider).json()["status"] == "offered"
    )


def test_the_highest_priority_eligible_person_gets_the_unit(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    stack.post_referral(outreach, priority={"vulnerability_score": 30})
    top = stack.post_referral(outreach, priority={"vulnerability_score": 90})
    stack.post_referral(
        outreach,
        priority={"vulnerability_score": 95},
        household={"adults": 3, "children": 0, "pets": 0},
    )  # does not fit
    stack.post_unit(stack.key(Role.housing_provider))
    stack.match()
    with stack.session() as session:
        [offer] = session.scalars(select(Offer)).all()
        assert offer.referral_id == top["id"]


def test_a_person_is_not_offered_a_unit_in_an_area_they_avoid(stack: Stack) -> None:
    stack.post_referral(stack.key(Role.outreach), areas={"acceptable": [], "avoid": ["harbour"]})
    stack.post_unit(stack.key(Role.housing_provider), area="harbour")
    stack.match()
    with stack.session() as session:
        assert session.scalars(select(Offer)).all() == []


def test_requests_coalesce_into_one_round(stack: Stack) -> None:
    stack.post_unit(stack.key(Role.housing_provider))
    with stack.session() as session:
        for _ in range(5):
            request_round(session, "north")
    rounds = 0
    while True:
        with stack.session() as session:
            if not serve_request(session, "north", now=utcnow(), ttl_hours=72):
                break
            rounds += 1
    assert rounds == 1
    with stack.session() as session:
        state = session.get(RegionMatching, "north")
        assert state is not None and state.completed == state.requested == 5
        assert len(session.scalars(select(MatchRound)).all()) == 1


def test_a_unit_cannot_hold_two_live_offers(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    first, second = stack.post_referral(outreach), stack.post_referral(outreach)
    unit = stack.post_unit(stack.key(Role.housing_provider))
    with pytest.raises(IntegrityError), stack.session() as session:
        for referral in (first, second):
            session.add(
                Offer(
                    referral_id=referral["id"],
                    unit_id=unit["id"],
                    region="north",
                    status="open",
                    expires_at=utcnow(),
                )
            )
            session.flush()


def test_a_person_cannot_hold_two_live_offers(stack: Stack) -> None:
    referral = stack.post_referral(stack.key(Role.outreach))
    provider = stack.key(Role.housing_provider)
    units = [stack.post_unit(provider), stack.post_unit(provider)]
    with pytest.raises(IntegrityError), stack.session() as session:
        for unit in units:
            session.add(
                Offer(
                    referral_id=referral["id"],
                    unit_id=unit["id"],
                    region="north",
                    status="accepted",
                    expires_at=utcnow(),
                )
            )
            session.flush()
