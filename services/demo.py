"""`housingfirst demo`: a region with realistic synthetic people, homes, teams and a year of
history, so reports and the ops page have something to show. Names are invented."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from rich.progress import Progress
from sqlalchemy.orm import Session

from services.keys import create_key
from services.matcher.regions import request_round, serve_request
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import (
    Absence,
    Offer,
    Organization,
    Referral,
    SupportAssignment,
    SupportTeam,
    Tenancy,
    Unit,
    new_id,
    utcnow,
)

FIRST = ["Sam", "Alex", "Jo", "Chris", "Pat", "Robin", "Lee", "Jamie", "Kim", "Ash", "Dee", "Mo"]
LAST = ["Smith", "Jones", "Ahmed", "Nowak", "Okafor", "Byrne", "Silva", "Khan", "Evans", "Ward"]
AREAS = ["harbour", "old-town", "riverside", "north-quay", "hillside", "market"]
INTENSITY = ["high", "moderate", "low"]
KIND = {"high": "act", "moderate": "icm", "low": "floating"}


@dataclass(frozen=True, slots=True)
class DemoKeys:
    operations: str
    outreach: str
    provider: str
    support: str


def _person(rng: random.Random, region: str, org: str, referred_at: datetime) -> Referral:
    born = date(rng.randint(1950, 2006), rng.randint(1, 12), rng.randint(1, 28))
    family = rng.random() < 0.12
    return Referral(
        id=new_id(),
        region=region,
        organization_id=org,
        person_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
        date_of_birth=born,
        birth_year=born.year,
        gender=rng.choice(["female", "male", "male", "non_binary"]),
        contact=f"via {rng.choice(['day centre', 'soup run', 'library', 'GP surgery'])}",
        adults=2 if rng.random() < 0.1 else 1,
        children=rng.randint(1, 3) if family else 0,
        pets=1 if rng.random() < 0.12 else 0,
        needs_wheelchair=rng.random() < 0.04,
        needs_step_free=rng.random() < 0.08,
        veteran=rng.random() < 0.08,
        areas_acceptable=[],
        areas_avoid=[rng.choice(AREAS)] if rng.random() < 0.25 else [],
        support_intensity=rng.choice(INTENSITY),
        vulnerability_score=rng.randint(5, 100),
        months_homeless=rng.randint(1, 36),
        nights_unsheltered=rng.randint(10, 365),
        status="waiting",
        created_at=referred_at,
        updated_at=referred_at,
    )


def _unit(rng: random.Random, region: str, org: str, since: datetime) -> Unit:
    occupants = rng.choice([1, 1, 1, 2, 2, 3, 4])
    return Unit(
        id=new_id(),
        region=region,
        organization_id=org,
        reference=f"Flat {rng.randint(1, 300)}",
        area=rng.choice(AREAS),
        max_occupants=occupants,
        bedrooms=max(1, occupants - 1),
        wheelchair_accessible=rng.random() < 0.06,
        step_free=rng.random() < 0.15,
        pets_allowed=rng.random() < 0.4,
        eligibility=rng.choice([[], [], [], [], [], ["veterans"], ["families"], ["age_55_plus"]]),
        status="available",
        available_since=since,
        created_at=since,
        updated_at=since,
    )


def fill(session: Session, *, region: str, people: int, seed: int = 7) -> DemoKeys:
    """Create the demo region; returns one key per kind of organization."""
    rng = random.Random(seed)
    now = utcnow()
    keys = DemoKeys(
        operations=create_key(
            session,
            org=f"{region} operations",
            kind=OrganizationKind.operations,
            role=Role.operations,
            region=region,
        ),
        outreach=create_key(
            session,
            org=f"{region} street outreach",
            kind=OrganizationKind.outreach,
            role=Role.outreach,
            region=region,
        ),
        provider=create_key(
            session,
            org=f"{region} homes",
            kind=OrganizationKind.housing_provider,
            role=Role.housing_provider,
            region=region,
        ),
        support=create_key(
            session,
            org=f"{region} support",
            kind=OrganizationKind.support_provider,
            role=Role.support_provider,
            region=region,
        ),
    )
    session.flush()
    orgs = {
        o.kind: o.id
        for o in session.query(Organization).filter(Organization.name.like(f"{region} %"))
    }
    teams = {
        kind: SupportTeam(
            id=new_id(),
            organization_id=orgs["support_provider"],
            region=region,
            kind=kind,
            name=f"{kind.upper()} team",
            areas=[],
            capacity=capacity,
        )
        for kind, capacity in (("act", 40), ("icm", 60), ("floating", 80))
    }
    session.add_all(teams.values())
    housed = people // 2
    with Progress() as progress:
        history = progress.add_task("a year of history", total=housed)
        for _ in range(housed):
            referred_at = now - timedelta(days=rng.randint(20, 365))
            person = _person(rng, region, orgs["outreach"], referred_at)
            unit = _unit(rng, region, orgs["housing_provider"], referred_at)
            unit.max_occupants = max(unit.max_occupants, person.adults + person.children)
            unit.wheelchair_accessible = unit.wheelchair_accessible or person.needs_wheelchair
            unit.eligibility = []
            session.add_all([person, unit])
            session.flush()  # no ORM relationships: rows go in dependency order by hand
            offered_at = referred_at + timedelta(days=rng.randint(0, 12), hours=rng.randint(1, 20))
            if rng.random() < 0.25:  # a first offer declined or left to expire, no penalty
                other = _unit(rng, region, orgs["housing_provider"], referred_at)
                session.add(other)
                session.flush()
                session.add(
                    Offer(
                        id=new_id(),
                        referral_id=person.id,
                        unit_id=other.id,
                        region=region,
                        status=rng.choice(["declined", "expired"]),
                        expires_at=offered_at + timedelta(hours=72),
                        created_at=offered_at,
                        updated_at=offered_at,
                        explanation={},
                    )
                )
                offered_at += timedelta(days=rng.randint(1, 10))
            moved_on = (offered_at + timedelta(days=rng.randint(2, 21))).date()
            if moved_on >= now.date():
                moved_on = now.date() - timedelta(days=1)
            offer = Offer(
                id=new_id(),
                referral_id=person.id,
                unit_id=unit.id,
                region=region,
                status="moved_in",
                expires_at=offered_at + timedelta(hours=72),
                created_at=offered_at,
                updated_at=offered_at,
                explanation={},
            )
            session.add(offer)
            session.flush()
            person.status, unit.status = "housed", "occupied"
            tenancy = Tenancy(
                id=new_id(),
                offer_id=offer.id,
                referral_id=person.id,
                unit_id=unit.id,
                organization_id=orgs["housing_provider"],
                region=region,
                status="active",
                started_on=moved_on,
            )
            if rng.random() < 0.15 and (now.date() - moved_on).days > 60:
                tenancy.status = "ended"
                tenancy.end_reason = rng.choice(
                    ["moved_on", "moved_on", "abandoned", "evicted", "deceased"]
                )
                tenancy.ended_on = moved_on + timedelta(
                    days=rng.randint(30, (now.date() - moved_on).days)
                )
                unit.status, unit.available_since = "available", now
            session.add(tenancy)
            session.flush()
            if rng.random() < 0.2:
                start = moved_on + timedelta(days=rng.randint(1, 30))
                session.add(
                    Absence(
                        id=new_id(),
                        tenancy_id=tenancy.id,
                        kind=rng.choice(["hospital", "prison", "other"]),
                        from_date=start,
                        to_date=None
                        if rng.random() < 0.3
                        else start + timedelta(days=rng.randint(3, 200)),
                    )
                )
            session.add(
                SupportAssignment(
                    referral_id=person.id,
                    team_id=teams[KIND[person.support_intensity]].id,
                    region=region,
                    kind=KIND[person.support_intensity],
                    status=rng.choice(["active", "active", "stepped_down"]),
                )
            )
            progress.advance(history)
        waiting = progress.add_task("people waiting and homes free now", total=people - housed)
        for _ in range(people - housed):
            session.add(
                _person(rng, region, orgs["outreach"], now - timedelta(days=rng.randint(0, 60)))
            )
            if rng.random() < 0.3:
                session.add(
                    _unit(
                        rng,
                        region,
                        orgs["housing_provider"],
                        now - timedelta(days=rng.randint(0, 20)),
                    )
                )
            progress.advance(waiting)
    session.flush()
    request_round(session, region)
    serve_request(session, region, now=now, ttl_hours=72)
    return keys
