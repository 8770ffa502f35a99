"""Race trials on PostgreSQL: rounds on several connections at once, against concurrent
withdrawals, declines and units going offline. No double offers; invariants hold after."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from oracle import check_invariants
from services.keys import create_key
from services.matcher.regions import request_round, serve_request
from services.matcher.rounds import StaleRound
from shared.domain import offers as offer_rules
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import Offer, Organization, Referral, Unit, new_id, utcnow
from support import Stack

TRIALS = 1000
TIME_BUDGET_SECONDS = 240
regions = itertools.count()


def drain(stack: Stack, region: str) -> None:
    with stack.session() as session:
        request_round(session, region)
    while True:
        try:
            with stack.session() as session:
                if not serve_request(session, region, now=utcnow(), ttl_hours=72):
                    return
        except StaleRound:
            continue


def seed(stack: Stack, region: str, orgs: dict[str, str], rng: random.Random) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with stack.session() as session:
        for index in range(rng.randint(2, 8)):
            session.add(
                Referral(
                    id=new_id(),
                    region=region,
                    organization_id=orgs["outreach"],
                    person_name="x",
                    support_intensity="low",
                    status="waiting",
                    adults=rng.randint(1, 2),
                    pets=rng.choice([0, 0, 1]),
                    vulnerability_score=rng.choice([10, 50, 90]),
                    created_at=t0 + timedelta(seconds=index),
                )
            )
        for index in range(rng.randint(1, 5)):
            session.add(
                Unit(
                    id=new_id(),
                    region=region,
                    organization_id=orgs["provider"],
                    area="a",
                    max_occupants=rng.randint(1, 2),
                    bedrooms=1,
                    pets_allowed=rng.random() < 0.5,
                    status="available",
                    available_since=t0 + timedelta(seconds=index),
                )
            )


def withdraw_someone(session: Session, region: str, rng: random.Random) -> None:
    people = list(
        session.scalars(
            select(Referral)
            .where(Referral.region == region, Referral.status == "waiting")
            .with_for_update()
        )
    )
    if people:
        person = rng.choice(people)
        person.status, person.version = "withdrawn", person.version + 1


def decline_one(session: Session, region: str, rng: random.Random) -> None:
    offers = list(
        session.scalars(select(Offer.id).where(Offer.region == region, Offer.status == "open"))
    )
    if not offers:
        return
    offer = session.scalar(select(Offer).where(Offer.id == rng.choice(offers)).with_for_update())
    if offer is None or offer.status != "open":
        return
    unit = session.scalar(select(Unit).where(Unit.id == offer.unit_id).with_for_update())
    referral = session.scalar(
        select(Referral).where(Referral.id == offer.referral_id).with_for_update()
    )
    offer = session.scalar(
        select(Offer).where(Offer.id == offer.id).execution_options(populate_existing=True)
    )
    if unit and referral and offer and offer.status == "open":
        offer_rules.close(offer=offer, referral=referral, unit=unit, action="decline", now=utcnow())


def take_unit_offline(session: Session, region: str, rng: random.Random) -> None:
    units = list(
        session.scalars(
            select(Unit).where(Unit.region == region, Unit.status == "available").with_for_update()
        )
    )
    if units:
        unit = rng.choice(units)
        unit.status, unit.version = "offline", unit.version + 1


def test_a_thousand_race_trials_never_double_offer(pg_stack: Stack) -> None:
    with pg_stack.session() as session:
        create_key(
            session,
            org="race-outreach",
            kind=OrganizationKind.outreach,
            role=Role.outreach,
            region=None,
        )
        create_key(
            session,
            org="race-provider",
            kind=OrganizationKind.housing_provider,
            role=Role.housing_provider,
            region=None,
        )
        session.flush()
        orgs = {o.name.split("-")[1]: o.id for o in session.scalars(select(Organization))}
    rng = random.Random(20261127)
    changes: list[Callable[[Session, str, random.Random], None]] = [
        withdraw_someone,
        decline_one,
        take_unit_offline,
    ]
    started = time.monotonic()
    trials = 0
    with ThreadPoolExecutor(max_workers=5) as pool:
        while trials < TRIALS and time.monotonic() - started < TIME_BUDGET_SECONDS:
            region = f"race{next(regions)}"
            seed(pg_stack, region, orgs, rng)
            barrier = threading.Barrier(5)
            change = rng.choice(changes)
            seed_value = rng.random()

            def matcher(region: str = region, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                drain(pg_stack, region)

            def changer(
                region: str = region,
                barrier: threading.Barrier = barrier,
                change: Callable[..., None] = change,
                seed_value: float = seed_value,
            ) -> None:
                barrier.wait()
                with pg_stack.session() as session:
                    change(session, region, random.Random(seed_value))
                drain(pg_stack, region)  # every change triggers matching

            futures = [pool.submit(matcher) for _ in range(4)] + [pool.submit(changer)]
            for future in futures:
                future.result(timeout=60)
            drain(pg_stack, region)
            with pg_stack.session() as session:
                check_invariants(session, region, utcnow().date())
            trials += 1
    print(f"race trials: {trials} in {time.monotonic() - started:.1f}s")
    assert trials >= 200, f"only {trials} trials ran within the time budget"
    with pg_stack.session() as session:
        check_invariants(session, None, utcnow().date())
