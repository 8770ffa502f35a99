"""Property tests: over random regions the database's offers equal the oracle's, and the
invariants hold, through a first round and a second round after random declines."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle import P, U, check_invariants, load_state, open_offers, oracle, oracle_sorted
from services.keys import create_key
from shared.domain import offers as offer_rules
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import Offer, Organization, Referral, Unit, new_id, utcnow
from shared.models import Referral as R
from support import Stack

regions = itertools.count()
AREAS = ["north-quay", "old-town", "riverside"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

person_strategy = st.fixed_dictionaries(
    {
        "adults": st.integers(1, 2),
        "children": st.sampled_from([0, 0, 1, 2]),
        "pets": st.sampled_from([0, 0, 1]),
        "needs_wheelchair": st.sampled_from([False, False, False, True]),
        "needs_step_free": st.sampled_from([False, False, True]),
        "veteran": st.booleans(),
        "gender": st.sampled_from(["female", "male", "non_binary", None]),
        "date_of_birth": st.sampled_from(
            [None, date(2004, 5, 1), date(1990, 1, 1), date(1960, 3, 3)]
        ),
        "areas_avoid": st.lists(st.sampled_from(AREAS), max_size=2, unique=True),
        "areas_acceptable": st.sampled_from([[], [], ["old-town"], ["riverside", "north-quay"]]),
        "vulnerability_score": st.sampled_from([10, 50, 50, 90]),
        "months_homeless": st.sampled_from([0, 12, 36]),
        "minute": st.integers(0, 30),
    }
)
unit_strategy = st.fixed_dictionaries(
    {
        "area": st.sampled_from(AREAS),
        "max_occupants": st.integers(1, 4),
        "wheelchair_accessible": st.sampled_from([False, False, False, True]),
        "step_free": st.sampled_from([False, False, True]),
        "pets_allowed": st.booleans(),
        "eligibility": st.sampled_from(
            [
                [],
                [],
                [],
                ["veterans"],
                ["families"],
                ["women_only"],
                ["young_people"],
                ["age_55_plus"],
            ]
        ),
        "minute": st.integers(0, 30),
    }
)


def build_region(stack: Stack, people: list[dict[str, Any]], units: list[dict[str, Any]]) -> str:
    region = f"r{next(regions)}"
    with stack.session() as session:
        create_key(
            session,
            org="prop-outreach",
            kind=OrganizationKind.outreach,
            role=Role.outreach,
            region=None,
        )
        create_key(
            session,
            org="prop-provider",
            kind=OrganizationKind.housing_provider,
            role=Role.housing_provider,
            region=None,
        )
        session.flush()
        orgs = {o.name: o.id for o in session.query(Organization)}
        for index, facts in enumerate(people):
            facts = dict(facts)
            minute = facts.pop("minute")
            session.add(
                R(
                    id=new_id(),
                    region=region,
                    organization_id=orgs["prop-outreach"],
                    person_name=f"P{index}",
                    support_intensity="high",
                    status="waiting",
                    created_at=T0 + timedelta(minutes=minute, microseconds=index),
                    **facts,
                )
            )
        for index, facts in enumerate(units):
            facts = dict(facts)
            minute = facts.pop("minute")
            session.add(
                Unit(
                    id=new_id(),
                    region=region,
                    organization_id=orgs["prop-provider"],
                    bedrooms=1,
                    status="available",
                    available_since=T0 + timedelta(minutes=minute, microseconds=index),
                    **facts,
                )
            )
    return region


def expect_round_equals_oracle(stack: Stack, region: str) -> None:
    with stack.session() as session:
        units, people = load_state(session, region)
    expected = oracle(units, people, utcnow().date())
    started = utcnow()
    stack.match(region)
    with stack.session() as session:
        assert open_offers(session, region, since=started) == expected
        check_invariants(session, region, utcnow().date())


def decline_some(stack: Stack, region: str, pick: list[bool]) -> None:
    with stack.session() as session:
        offers = list(
            session.query(Offer)
            .filter(Offer.region == region, Offer.status == "open")
            .order_by(Offer.id)
        )
        for offer, decline in zip(offers, pick, strict=False):
            if decline:
                offer_rules.close(
                    offer=offer,
                    referral=session.get(Referral, offer.referral_id),  # type: ignore[arg-type]
                    unit=session.get(Unit, offer.unit_id),
                    action="decline",
                    now=utcnow(),  # type: ignore[arg-type]
                    reason="not for me",
                )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    people=st.lists(person_strategy, max_size=14),
    units=st.lists(unit_strategy, max_size=10),
    more_units=st.lists(unit_strategy, max_size=4),
    declines=st.lists(st.booleans(), max_size=10),
)
def test_offers_equal_the_oracle_through_declines_and_new_units(
    stack: Stack,
    people: list[dict[str, Any]],
    units: list[dict[str, Any]],
    more_units: list[dict[str, Any]],
    declines: list[bool],
) -> None:
    region = build_region(stack, people, units)
    expect_round_equals_oracle(stack, region)
    decline_some(stack, region, declines)
    if more_units:
        with stack.session() as session:
            org = (
                session.query(Unit.organization_id).filter(Unit.region == region).limit(1).scalar()
            )
            for facts in more_units:
                facts = dict(facts)
                facts.pop("minute")
                session.add(
                    Unit(
                        id=new_id(),
                        region=region,
                        organization_id=org
                        or session.query(Organization.id).filter_by(name="prop-provider").scalar(),
                        bedrooms=1,
                        status="available",
                        available_since=utcnow(),
                        **facts,
                    )
                )
    expect_round_equals_oracle(stack, region)


@settings(max_examples=200, deadline=None)
@given(people=st.lists(person_strategy, max_size=20), units=st.lists(unit_strategy, max_size=12))
def test_the_benchmarks_fast_oracle_equals_the_plain_one(
    people: list[dict[str, Any]], units: list[dict[str, Any]]
) -> None:
    ps = [
        P(
            f"p{i}",
            f["adults"],
            f["children"],
            f["pets"],
            f["needs_wheelchair"],
            f["needs_step_free"],
            f["veteran"],
            f["gender"],
            f["date_of_birth"],
            tuple(f["areas_acceptable"]),
            tuple(f["areas_avoid"]),
            f["vulnerability_score"],
            f["months_homeless"],
            T0 + timedelta(minutes=f["minute"]),
            frozenset(),
        )
        for i, f in enumerate(people)
    ]
    us = [
        U(
            f"u{i}",
            f["area"],
            f["max_occupants"],
            f["wheelchair_accessible"],
            f["step_free"],
            f["pets_allowed"],
            tuple(f["eligibility"]),
            T0 + timedelta(minutes=f["minute"]),
        )
        for i, f in enumerate(units)
    ]
    today = date(2026, 11, 27)
    assert oracle_sorted(us, ps, today) == oracle(us, ps, today)
