"""After the offer: move-in, absences, ending, support that floats, capacity, erasure."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from services.matcher.expiry import expire_due_offers
from services.notifier.capacity import assign_waiting
from shared.domain.vocabulary import Role
from shared.models import Offer, OutboxEvent, SupportAssignment, utcnow
from support import Stack


def topics(stack: Stack) -> list[str]:
    with stack.session() as session:
        return list(session.scalars(select(OutboxEvent.topic).order_by(OutboxEvent.created_at)))


def offer_of(stack: Stack, headers: dict[str, str], referral_id: str) -> Any:
    return stack.client.get(f"/v1/referrals/{referral_id}", headers=headers).json()["offer"]


def team(stack: Stack, headers: dict[str, str], capacity: int = 10, kind: str = "act") -> Any:
    response = stack.client.post(
        "/v1/support-teams",
        headers=headers,
        json={"region": "north", "kind": kind, "capacity": capacity},
    )
    assert response.status_code == 201
    return response.json()


def housed(stack: Stack) -> tuple[dict[str, str], dict[str, str], dict[str, str], Any, Any, Any]:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    support = stack.key(Role.support_provider)
    team(stack, support)
    unit = stack.post_unit(provider)
    referral = stack.post_referral(outreach)
    stack.settle()
    offer = offer_of(stack, outreach, referral["id"])
    assert (
        stack.client.post(f"/v1/offers/{offer['id']}/accept", headers=outreach).status_code == 200
    )
    moved = stack.client.post(
        f"/v1/offers/{offer['id']}/move-in", headers=provider, json={"date": "2026-12-01"}
    )
    assert moved.status_code == 200, moved.text
    return outreach, provider, support, unit, referral, moved.json()


def test_move_in_creates_an_active_tenancy(stack: Stack) -> None:
    outreach, provider, _, unit, referral, tenancy = housed(stack)
    assert tenancy["status"] == "active" and tenancy["started_on"] == "2026-12-01"
    assert tenancy["support"]["status"] == "assigned"
    assert (
        stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()["status"]
        == "housed"
    )
    assert (
        stack.client.get(f"/v1/units/{unit['id']}", headers=provider).json()["status"] == "occupied"
    )
    assert "tenancy.started" in topics(stack)
    listed = stack.client.get("/v1/tenancies?status=active", headers=provider).json()["items"]
    assert [t["id"] for t in listed] == [tenancy["id"]]
    again = stack.client.post(
        f"/v1/offers/{tenancy['offer_id']}/move-in", headers=provider, json={"date": "2026-12-02"}
    )
    assert again.status_code == 409


def test_move_in_needs_an_accepted_offer_and_the_provider(stack: Stack) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    stack.post_unit(provider)
    referral = stack.post_referral(outreach)
    stack.match()
    offer = offer_of(stack, outreach, referral["id"])
    body = {"date": "2026-12-01"}
    assert (
        stack.client.post(
            f"/v1/offers/{offer['id']}/move-in", headers=provider, json=body
        ).status_code
        == 409
    )
    assert (
        stack.client.post(
            f"/v1/offers/{offer['id']}/move-in", headers=outreach, json=body
        ).status_code
        == 403
    )
    other = stack.key(Role.housing_provider)
    assert (
        stack.client.post(f"/v1/offers/{offer['id']}/move-in", headers=other, json=body).status_code
        == 404
    )


def test_absences_never_end_the_tenancy_and_ending_frees_the_unit(stack: Stack) -> None:
    _, provider, _, unit, _, tenancy = housed(stack)
    base = f"/v1/tenancies/{tenancy['id']}"
    absence = stack.client.post(
        f"{base}/absences", headers=provider, json={"kind": "prison", "from": "2027-01-05"}
    )
    assert absence.status_code == 201
    assert (
        stack.client.post(
            f"{base}/absences", headers=provider, json={"kind": "other", "from": "2027-01-06"}
        ).status_code
        == 409
    )
    ended = stack.client.post(
        f"{base}/absences/{absence.json()['id']}/end", headers=provider, json={"to": "2027-03-01"}
    )
    assert ended.status_code == 200 and ended.json()["to"] == "2027-03-01"
    assert (
        stack.client.post(
            f"{base}/absences/{absence.json()['id']}/end", headers=provider, json={}
        ).status_code
        == 409
    )
    assert stack.client.get(base, headers=provider).json()["status"] == "active"
    finished = stack.client.post(
        f"{base}/end", headers=provider, json={"reason": "moved_on", "date": "2027-06-01"}
    )
    assert finished.status_code == 200 and finished.json()["status"] == "ended"
    assert (
        stack.client.get(f"/v1/units/{unit['id']}", headers=provider).json()["status"]
        == "available"
    )
    assert {"tenancy.ended", "unit.available"} <= set(topics(stack))
    assert (
        stack.client.post(
            f"{base}/end", headers=provider, json={"reason": "other", "date": "2027-06-02"}
        ).status_code
        == 409
    )
    assert (
        stack.client.post(
            f"{base}/absences", headers=provider, json={"kind": "hospital", "from": "2027-07-01"}
        ).status_code
        == 409
    )
    # the freed unit is matched again at once
    newcomer = stack.post_referral(stack.key(Role.outreach))
    stack.match()
    assert offer_of(stack, stack.key(Role.admin), newcomer["id"])["unit_id"] == unit["id"]


def test_only_the_provider_changes_a_tenancy(stack: Stack) -> None:
    outreach, _, support, _, _, tenancy = housed(stack)
    base = f"/v1/tenancies/{tenancy['id']}"
    assert stack.client.get(base, headers=outreach).status_code == 200
    assert (
        stack.client.post(
            f"{base}/end", headers=outreach, json={"reason": "other", "date": "2027-01-01"}
        ).status_code
        == 403
    )
    assert stack.client.get(base, headers=stack.key(Role.housing_provider)).status_code == 404
    assert stack.client.get(base, headers=support).status_code == 404


def test_support_acknowledge_step_down_resume_with_409s_and_tenancy_untouched(stack: Stack) -> None:
    _, provider, support, _, _, tenancy = housed(stack)
    [assignment] = stack.client.get("/v1/support-assignments", headers=support).json()["items"]
    assert assignment["person"]["name"] == "Sam" and assignment["unit"] is not None
    base = f"/v1/support-assignments/{assignment['id']}"
    assert stack.client.post(f"{base}/resume", headers=support).status_code == 409
    assert stack.client.post(f"{base}/acknowledge", headers=support).json()["status"] == "active"
    assert stack.client.post(f"{base}/acknowledge", headers=support).status_code == 409
    down = stack.client.post(f"{base}/step-down", headers=support, json={"reason": "doing well"})
    assert down.json()["status"] == "stepped_down"
    assert (
        stack.client.post(f"{base}/step-down", headers=support, json={"reason": "x"}).status_code
        == 409
    )
    assert stack.client.post(f"{base}/resume", headers=support).json()["status"] == "active"
    assert {"support.stepped_down", "support.resumed"} <= set(topics(stack))
    assert (
        stack.client.get(f"/v1/tenancies/{tenancy['id']}", headers=provider).json()["status"]
        == "active"
    )
    assert (
        stack.client.post(
            f"{base}/acknowledge", headers=stack.key(Role.support_provider)
        ).status_code
        == 404
    )
    assert stack.client.get("/v1/support-assignments", headers=provider).status_code == 403


def test_one_person_the_whole_way(stack: Stack) -> None:
    """referral → offer → decline → second offer → accept → move-in → 200 days in hospital →
    support steps down → resumes → tenancy still active, unit never re-offered."""
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    support = stack.key(Role.support_provider)
    team(stack, support)
    first_unit = stack.post_unit(provider, area="harbour-view")
    sam = stack.post_referral(outreach, areas={"acceptable": [], "avoid": []})
    stack.settle()
    first = offer_of(stack, outreach, sam["id"])
    assert first["unit_id"] == first_unit["id"]
    stack.client.post(
        f"/v1/offers/{first['id']}/decline", headers=outreach, json={"reason": "too far"}
    )
    second_unit = stack.post_unit(provider, area="riverside")
    stack.settle()
    second = offer_of(stack, outreach, sam["id"])
    assert second["unit_id"] == second_unit["id"] and second["status"] == "open"
    assert (
        stack.client.post(f"/v1/offers/{second['id']}/accept", headers=outreach).status_code == 200
    )
    tenancy = stack.client.post(
        f"/v1/offers/{second['id']}/move-in", headers=provider, json={"date": "2026-12-01"}
    ).json()
    start = date(2027, 1, 10)
    absence = stack.client.post(
        f"/v1/tenancies/{tenancy['id']}/absences",
        headers=provider,
        json={"kind": "hospital", "from": start.isoformat()},
    ).json()
    # 200 days pass: people keep arriving, offers expire and rounds run; the home is kept
    for _ in range(3):
        stack.post_referral(outreach, priority={"vulnerability_score": 100})
        with stack.session() as session:
            expire_due_offers(session, now=utcnow() + timedelta(days=200))
        stack.settle()
    stack.client.post(
        f"/v1/tenancies/{tenancy['id']}/absences/{absence['id']}/end",
        headers=provider,
        json={"to": (start + timedelta(days=200)).isoformat()},
    )
    listed = stack.client.get("/v1/support-assignments", headers=support).json()["items"]
    [assignment] = [a for a in listed if a["referral_id"] == sam["id"]]
    base = f"/v1/support-assignments/{assignment['id']}"
    stack.client.post(f"{base}/acknowledge", headers=support)
    assert (
        stack.client.post(
            f"{base}/step-down", headers=support, json={"reason": "settled"}
        ).status_code
        == 200
    )
    assert stack.client.post(f"{base}/resume", headers=support).status_code == 200
    final = stack.client.get(f"/v1/tenancies/{tenancy['id']}", headers=provider).json()
    assert final["status"] == "active"
    assert final["absences"][0]["to"] == (start + timedelta(days=200)).isoformat()
    assert (
        stack.client.get(f"/v1/units/{second_unit['id']}", headers=provider).json()["status"]
        == "occupied"
    )
    with stack.session() as session:
        on_home = list(session.scalars(select(Offer).where(Offer.unit_id == second_unit["id"])))
    assert [offer.id for offer in on_home] == [second["id"]]
    assert (
        stack.client.get(f"/v1/referrals/{sam['id']}", headers=outreach).json()["status"]
        == "housed"
    )


def test_a_full_team_gets_no_more_and_waiting_is_assigned_oldest_first(stack: Stack) -> None:
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    support = stack.key(Role.support_provider)
    small = team(stack, support, capacity=1)
    people = [
        stack.post_referral(outreach, priority={"vulnerability_score": 90 - i}) for i in range(3)
    ]
    for _ in people:
        stack.post_unit(provider)
    stack.settle()
    with stack.session() as session:
        rows = {a.referral_id: a for a in session.scalars(select(SupportAssignment))}
    statuses = [rows[p["id"]].status for p in people]
    assert statuses.count("assigned") == 1 and statuses.count("pending_capacity") == 2
    assert topics(stack).count("support.pending_capacity") == 2
    # every offer was made anyway: housing never waits for support
    assert all(offer_of(stack, outreach, p["id"])["status"] == "open" for p in people)
    with stack.session() as session:
        assert assign_waiting(session) == 0  # still full
    [held] = stack.client.get("/v1/support-assignments", headers=support).json()["items"]
    stack.client.post(
        f"/v1/support-assignments/{held['id']}/step-down", headers=support, json={"reason": "ok"}
    )
    with stack.session() as session:
        assert assign_waiting(session) == 1
    with stack.session() as session:
        rows = {a.referral_id: a for a in session.scalars(select(SupportAssignment))}
        pending = sorted(
            (a for a in rows.values() if a.referral_id != held["referral_id"]),
            key=lambda a: a.created_at,
        )
        assert [a.status for a in pending] == ["assigned", "pending_capacity"]
        assert pending[0].team_id == small["id"]
    # resuming the stepped-down one now would exceed capacity
    assert (
        stack.client.post(
            f"/v1/support-assignments/{held['id']}/resume", headers=support
        ).status_code
        == 409
    )


def test_erasure_blanks_personal_data_and_keeps_facts(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    referral = stack.post_referral(outreach, key="erase-me")
    assert (
        stack.client.delete(
            f"/v1/referrals/{referral['id']}", headers=stack.key(Role.outreach)
        ).status_code
        == 404
    )
    assert (
        stack.client.delete(
            f"/v1/referrals/{referral['id']}", headers=stack.key(Role.housing_provider)
        ).status_code
        == 403
    )
    assert (
        stack.client.delete(f"/v1/referrals/{referral['id']}", headers=outreach).status_code == 204
    )
    seen = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
    assert seen["person"] == {
        "name": None,
        "date_of_birth": None,
        "gender": "male",
        "contact": None,
        "erased": True,
    }
    assert seen["priority"]["vulnerability_score"] == 72 and seen["household"]["pets"] == 1
    replay = stack.client.post(
        "/v1/referrals",
        json=__import__("support").referral_body(),
        headers={**outreach, "Idempotency-Key": "erase-me"},
    )
    assert "Sam" not in replay.text
    admin_erase = stack.post_referral(outreach)
    assert (
        stack.client.delete(
            f"/v1/referrals/{admin_erase['id']}", headers=stack.key(Role.admin)
        ).status_code
        == 204
    )
