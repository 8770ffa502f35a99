"""Accept, decline, expiry, withdrawal, rematch on change, and 409s (SQLite and PostgreSQL)."""

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from services.matcher.expiry import expire_due_offers
from shared.domain.vocabulary import Role
from shared.models import Offer, OutboxEvent, utcnow
from support import Stack


def topics(stack: Stack) -> list[str]:
    with stack.session() as session:
        return list(session.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.created_at)))


def live_offer(stack: Stack, headers: dict[str, str], referral_id: str) -> Any:
    return stack.client.get(f"/v1/referrals/{referral_id}", headers=headers).json()["offer"]


def setup_offer(stack: Stack) -> tuple[dict[str, str], dict[str, str], Any, Any, Any]:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    unit = stack.post_unit(provider)
    referral = stack.post_referral(outreach)
    stack.match()
    offer = live_offer(stack, outreach, referral["id"])
    assert offer is not None and offer["status"] == "open"
    return outreach, provider, unit, referral, offer


def test_accept_then_wrong_state_actions_are_409(stack: Stack) -> None:
    outreach, provider, unit, referral, offer = setup_offer(stack)
    accepted = stack.client.post(f"/v1/offers/{offer['id']}/accept", headers=outreach)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    got = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
    assert got["status"] == "accepted"
    for action, body in (("accept", None), ("decline", {"reason": "changed mind"})):
        again = stack.client.post(f"/v1/offers/{offer['id']}/{action}", headers=outreach, json=body)
        assert again.status_code == 409, action
        assert again.headers["content-type"] == "application/problem+json"
    assert "offer.accepted" in topics(stack)
    offline = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"status": "offline"}, headers=provider
    )
    assert offline.status_code == 409


def test_decline_keeps_priority_never_reoffers_that_unit_and_rematches_it(stack: Stack) -> None:
    outreach, provider, unit, referral, offer = setup_offer(stack)
    other = stack.post_referral(outreach, priority={"vulnerability_score": 10})
    declined = stack.client.post(
        f"/v1/offers/{offer['id']}/decline",
        headers=outreach,
        json={"reason": "too far from family"},
    )
    assert declined.status_code == 200
    assert declined.json()["decline_reason"] == "too far from family"
    assert {"offer.declined", "unit.available"} <= set(topics(stack))
    stack.match()
    assert live_offer(stack, outreach, other["id"])["unit_id"] == unit["id"]
    me = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
    assert me["status"] == "waiting" and me["priority"]["vulnerability_score"] == 72
    # a second unit: the person who declined is still first in line
    second = stack.post_unit(provider)
    stack.match()
    assert live_offer(stack, outreach, referral["id"])["unit_id"] == second["id"]


def test_a_declined_unit_is_never_offered_again_even_when_it_frees(stack: Stack) -> None:
    outreach, provider, unit, referral, offer = setup_offer(stack)
    stack.client.post(f"/v1/offers/{offer['id']}/decline", headers=outreach, json={"reason": "no"})
    stack.match()
    with stack.session() as session:
        offers = list(session.scalars(select(Offer).where(Offer.referral_id == referral["id"])))
    assert [o.status for o in offers] == ["declined"]
    assert (
        stack.client.get(f"/v1/units/{unit['id']}", headers=provider).json()["status"]
        == "available"
    )


def test_expiry_is_swept_from_the_database_and_three_in_a_row_flag_contact(stack: Stack) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    referral = stack.post_referral(outreach)
    for round_number in range(1, 4):
        stack.post_unit(provider)
        stack.match()
        assert live_offer(stack, outreach, referral["id"])["status"] == "open"
        with stack.session() as session:
            assert expire_due_offers(session, now=utcnow()) == 0  # not yet due
        with stack.session() as session:
            assert expire_due_offers(session, now=utcnow() + timedelta(hours=73)) == 1
        me = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
        assert me["status"] == "waiting"
        assert me["contact_needed"] is (round_number == 3)
    assert topics(stack).count("offer.expired") == 3


def test_withdraw_cancels_the_open_offer_and_frees_the_unit(stack: Stack) -> None:
    outreach, provider, unit, referral, offer = setup_offer(stack)
    withdrawn = stack.client.post(
        f"/v1/referrals/{referral['id']}/withdraw", headers=outreach, json={"reason": "moved away"}
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    got = stack.client.get(f"/v1/offers/{offer['id']}", headers=outreach).json()
    assert got["status"] == "cancelled"
    assert (
        stack.client.get(f"/v1/units/{unit['id']}", headers=provider).json()["status"]
        == "available"
    )
    assert {"offer.cancelled", "unit.available", "referral.withdrawn"} <= set(topics(stack))
    again = stack.client.post(
        f"/v1/referrals/{referral['id']}/withdraw", headers=outreach, json={"reason": "x"}
    )
    assert again.status_code == 409


def test_unit_offline_cancels_its_open_offer_and_the_person_waits(stack: Stack) -> None:
    outreach, provider, unit, referral, offer = setup_offer(stack)
    offline = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"status": "offline"}, headers=provider
    )
    assert offline.status_code == 200 and offline.json()["status"] == "offline"
    assert (
        stack.client.get(f"/v1/offers/{offer['id']}", headers=provider).json()["status"]
        == "cancelled"
    )
    me = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
    assert me["status"] == "waiting"


def test_patching_a_referral_rematches(stack: Stack) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    referral = stack.post_referral(outreach, household={"adults": 3, "children": 0, "pets": 0})
    stack.post_unit(provider, max_occupants=2)
    stack.match()
    assert live_offer(stack, outreach, referral["id"]) is None
    patched = stack.client.patch(
        f"/v1/referrals/{referral['id']}",
        headers=outreach,
        json={
            "household": {"adults": 2, "children": 0, "pets": 0},
            "person": {"contact": "library"},
        },
    )
    assert patched.status_code == 200 and patched.json()["person"]["contact"] == "library"
    assert "referral.changed" in topics(stack)
    stack.match()
    assert live_offer(stack, outreach, referral["id"])["status"] == "open"


def test_patching_a_unit_rematches(stack: Stack) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    referral = stack.post_referral(outreach)
    unit = stack.post_unit(provider, pets_allowed=False)
    stack.match()
    assert live_offer(stack, outreach, referral["id"]) is None
    stack.client.patch(f"/v1/units/{unit['id']}", json={"pets_allowed": True}, headers=provider)
    assert topics(stack)[-1] == "unit.changed"
    stack.match()
    assert live_offer(stack, outreach, referral["id"])["unit_id"] == unit["id"]


def test_readiness_conditions_cannot_be_patched_into_a_referral(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    referral = stack.post_referral(outreach)
    for body in (
        {"sobriety": True},
        {"needs": {"wheelchair": False, "drug_test_passed": True}},
        {"priority": {"vulnerability_score": 1, "treatment_engagement": 5}},
    ):
        response = stack.client.patch(
            f"/v1/referrals/{referral['id']}", headers=outreach, json=body
        )
        assert response.status_code == 422, body
        assert "Housing First" in response.json()["detail"]


def test_offers_are_readable_by_the_provider_and_the_referrer_only(stack: Stack) -> None:
    outreach, provider, _, _, offer = setup_offer(stack)
    for headers in (outreach, provider):
        got = stack.client.get(f"/v1/offers/{offer['id']}", headers=headers)
        assert got.status_code == 200
        assert got.json()["explanation"]["rank"]["position"] == 1
    for role in (Role.outreach, Role.housing_provider, Role.support_provider):
        assert (
            stack.client.get(f"/v1/offers/{offer['id']}", headers=stack.key(role)).status_code
            == 404
        )
    assert (
        stack.client.post(
            f"/v1/offers/{offer['id']}/accept", headers=stack.key(Role.outreach)
        ).status_code
        == 404
    )
    assert (
        stack.client.post(f"/v1/offers/{offer['id']}/accept", headers=provider).status_code == 403
    )


def test_lists_paginate_and_follow_changes(stack: Stack) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    made = [stack.post_referral(outreach)["id"] for _ in range(5)]
    first = stack.client.get("/v1/referrals?limit=2", headers=outreach).json()
    assert [r["id"] for r in first["items"]] == made[:2]
    rest = stack.client.get(
        f"/v1/referrals?limit=10&cursor={first['next_cursor']}", headers=outreach
    ).json()
    assert [r["id"] for r in rest["items"]] == made[2:] and rest["next_cursor"] is None
    since = rest["cursor"]
    assert (
        stack.client.get(f"/v1/referrals?changed_since={since}", headers=outreach).json()["items"]
        == []
    )
    stack.post_unit(provider)
    stack.match()
    changed = stack.client.get(f"/v1/referrals?changed_since={since}", headers=outreach).json()
    assert [r["status"] for r in changed["items"]] == ["offered"]
    offers = stack.client.get("/v1/offers?status=open", headers=provider).json()["items"]
    assert len(offers) == 1
    assert (
        stack.client.get("/v1/referrals?status=waiting", headers=outreach).json()["items"].__len__()
        == 4
    )
    assert stack.client.get("/v1/referrals?cursor=nonsense", headers=outreach).status_code == 400
