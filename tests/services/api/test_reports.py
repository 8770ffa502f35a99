"""Reports against figures computed by hand on a small fixed data set."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from shared.domain.vocabulary import Role
from shared.models import Offer, Organization, Referral, Tenancy, Unit, new_id, utcnow
from support import Stack

NOW = utcnow().replace(microsecond=0)


def ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def person(
    org: str, score: int, referred_days_ago: int, status: str = "waiting", **facts: Any
) -> Referral:
    values: dict[str, Any] = {"adults": 1, "children": 0, "pets": 0, "gender": "male"}
    values.update(facts)
    return Referral(
        id=new_id(),
        region="r1",
        organization_id=org,
        person_name="x",
        support_intensity="low",
        status=status,
        vulnerability_score=score,
        created_at=ago(referred_days_ago),
        updated_at=ago(referred_days_ago),
        **values,
    )


def home(org: str, status: str = "occupied", **features: Any) -> Unit:
    values: dict[str, Any] = {"max_occupants": 1}
    values.update(features)
    return Unit(
        id=new_id(), region="r1", organization_id=org, area="a", bedrooms=1, status=status, **values
    )


def offer(referral: Referral, unit: Unit, made_days_ago: int, status: str) -> Offer:
    return Offer(
        id=new_id(),
        referral_id=referral.id,
        unit_id=unit.id,
        region="r1",
        status=status,
        expires_at=ago(made_days_ago) + timedelta(hours=72),
        created_at=ago(made_days_ago),
        updated_at=ago(made_days_ago),
    )


def seed(stack: Stack) -> dict[str, dict[str, str]]:
    keys = {
        "ops": stack.key(Role.operations, org="ops", region="r1"),
        "a": stack.key(Role.outreach, org="outreach A", region="r1"),
        "b": stack.key(Role.outreach, org="outreach B", region="r1"),
        "homes": stack.key(Role.housing_provider, org="homes", region="r1"),
        "support": stack.key(Role.support_provider, org="team", region="r1"),
    }
    with stack.session() as session:
        org = {o.name: o.id for o in session.scalars(select(Organization))}
        a, b, homes = org["outreach A"], org["outreach B"], org["homes"]
        r1 = person(a, 80, 50)
        r2 = person(a, 50, 40, needs_wheelchair=True)
        r3 = person(a, 10, 30, adults=2, children=1)
        r4 = person(a, 75, 20)
        r9 = person(b, 95, 10, pets=1)
        r5, r6, r7, r8 = (person(a, 60, d, status="housed") for d in (500, 300, 200, 100))
        ua, ub = home(homes), home(homes)
        uc = home(homes, max_occupants=2, pets_allowed=True)
        ud = home(homes, wheelchair_accessible=True)
        ue = home(homes, status="available", max_occupants=3, eligibility=["families"])
        session.add_all([r1, r2, r3, r4, r9, r5, r6, r7, r8, ua, ub, uc, ud, ue])
        session.flush()
        session.add_all(
            [
                offer(r1, ue, 45, "declined"),
                offer(r2, ud, 39, "expired"),
                offer(r5, ua, 490, "moved_in"),
                offer(r6, ub, 298, "moved_in"),
                offer(r7, uc, 196, "moved_in"),
                offer(r8, ud, 70, "moved_in"),
            ]
        )
        session.flush()
        offers = {
            o.referral_id: o.id
            for o in session.scalars(select(Offer).where(Offer.status == "moved_in"))
        }
        for referral, unit, started, status, reason in (
            (r5, ua, 480, "active", None),
            (r6, ub, 290, "ended", "evicted"),
            (r7, uc, 190, "ended", "moved_on"),
            (r8, ud, 60, "active", None),
        ):
            session.add(
                Tenancy(
                    id=new_id(),
                    offer_id=offers[referral.id],
                    referral_id=referral.id,
                    unit_id=unit.id,
                    organization_id=homes,
                    region="r1",
                    status=status,
                    started_on=ago(started).date(),
                    end_reason=reason,
                )
            )
    return keys


def test_summary_for_operations(stack: Stack) -> None:
    keys = seed(stack)
    summary = stack.client.get("/v1/reports/summary?region=r1", headers=keys["ops"]).json()
    assert summary["scope"] == "region"
    assert summary["waiting_by_priority_band"] == {"high": 3, "medium": 1, "low": 1}
    # first offers: 5, 1, 10, 2, 4, 30 days after referral
    assert summary["days_referral_to_offer"] == {"count": 6, "median": 4.5, "p90": 20.0}
    # move-ins: 20, 10, 10, 40 days after referral
    assert summary["days_referral_to_move_in"] == {"count": 4, "median": 15.0, "p90": 34.0}
    assert summary["retention"]["6_months"] == {"tenancies": 3, "retained": 2, "rate": 0.6667}
    assert summary["retention"]["12_months"] == {"tenancies": 1, "retained": 1, "rate": 1.0}
    assert summary["offers"] == {"declined": 1, "expired": 1}


def test_outreach_and_providers_see_their_own_slice(stack: Stack) -> None:
    keys = seed(stack)
    a = stack.client.get("/v1/reports/summary?region=r1", headers=keys["a"]).json()
    assert a["scope"] == "organization"
    assert a["waiting_by_priority_band"] == {"high": 2, "medium": 1, "low": 1}
    b = stack.client.get("/v1/reports/summary?region=r1", headers=keys["b"]).json()
    assert b["waiting_by_priority_band"] == {"high": 1, "medium": 0, "low": 0}
    assert b["days_referral_to_offer"]["count"] == 0 and b["offers"] == {
        "declined": 0,
        "expired": 0,
    }
    homes = stack.client.get("/v1/reports/summary?region=r1", headers=keys["homes"]).json()
    assert homes["days_referral_to_move_in"]["count"] == 4
    other = stack.key(Role.housing_provider, org="other homes", region="r1")
    empty = stack.client.get("/v1/reports/summary?region=r1", headers=other).json()
    assert empty["retention"]["6_months"] == {"tenancies": 0, "retained": 0, "rate": None}
    assert stack.client.get("/v1/reports/summary", headers=keys["support"]).status_code == 403


def test_unmet_need_counts_units_that_could_ever_fit(stack: Stack) -> None:
    keys = seed(stack)
    report = stack.client.get("/v1/reports/unmet-need?region=r1", headers=keys["ops"]).json()
    rows = {
        (p["occupants"], p["access"], p["pets"], tuple(p["eligibility"])): (
            p["households_waiting"],
            p["units_that_could_fit"],
        )
        for p in report["profiles"]
    }
    assert rows == {
        (1, "none", False, ()): (2, 4),
        (1, "wheelchair", False, ()): (1, 1),
        (3, "none", False, ("family",)): (1, 1),
        (1, "none", True, ()): (1, 1),
    }
    mine = stack.client.get("/v1/reports/unmet-need?region=r1", headers=keys["b"]).json()
    assert [(p["households_waiting"], p["pets"]) for p in mine["profiles"]] == [(1, True)]
