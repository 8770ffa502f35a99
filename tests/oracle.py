"""A plain, slow, obviously correct reference for matching, and the invariants of DESIGN.md 5.

Written apart from shared/domain on purpose: the tests compare the two.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Offer, Referral, Unit


@dataclass(frozen=True)
class P:
    id: str
    adults: int
    children: int
    pets: int
    wheelchair: bool
    step_free: bool
    veteran: bool
    gender: str | None
    born: date | None
    acceptable: tuple[str, ...]
    avoid: tuple[str, ...]
    score: int
    months: int
    referred_at: datetime
    declined: frozenset[str]


@dataclass(frozen=True)
class U:
    id: str
    area: str
    max_occupants: int
    wheelchair: bool
    step_free: bool
    pets: bool
    tags: tuple[str, ...]
    available_since: datetime


def years(born: date, today: date) -> int:
    age = today.year - born.year
    if (today.month, today.day) < (born.month, born.day):
        age -= 1
    return age


def fits(p: P, u: U, today: date) -> bool:
    """Rule 2, spelled out."""
    if p.adults + p.children > u.max_occupants:
        return False
    if p.wheelchair and not u.wheelchair:
        return False
    if p.step_free and not (u.step_free or u.wheelchair):
        return False
    if p.pets and not u.pets:
        return False
    for tag in u.tags:
        age = years(p.born, today) if p.born else None
        ok = {
            "veterans": p.veteran,
            "women_only": p.gender == "female",
            "families": p.children > 0,
            "young_people": age is not None and 18 <= age <= 25,
            "age_55_plus": age is not None and age >= 55,
        }[tag]
        if not ok:
            return False
    if u.area in p.avoid:
        return False
    if p.acceptable and u.area not in p.acceptable:
        return False
    return u.id not in p.declined


def special(u: U) -> bool:
    return u.wheelchair or u.step_free


def rank(p: P, u: U) -> tuple[object, ...]:
    """Rule 3 for one unit: needing its special feature first, then priority."""
    needs_it = special(u) and (p.wheelchair or p.step_free)
    return (not needs_it, -p.score, -p.months, p.referred_at, p.id)


def unit_order(u: U) -> tuple[object, ...]:
    return (not special(u), u.max_occupants, u.available_since, u.id)


def oracle(units: list[U], people: list[P], today: date) -> dict[str, str]:
    """Greedy: units scarcest first; each to the best-ranked eligible person not yet offered."""
    offered: dict[str, str] = {}
    taken: set[str] = set()
    for u in sorted(units, key=unit_order):
        candidates = [p for p in people if p.id not in taken and fits(p, u, today)]
        if candidates:
            best = min(candidates, key=lambda p: rank(p, u))
            offered[u.id] = best.id
            taken.add(best.id)
    return offered


def load_state(session: Session, region: str) -> tuple[list[U], list[P]]:
    """Available units and waiting people of a region, as the oracle sees them."""
    declined: dict[str, set[str]] = defaultdict(set)
    for referral_id, unit_id in session.execute(
        select(Offer.referral_id, Offer.unit_id).where(
            Offer.region == region, Offer.status == "declined"
        )
    ):
        declined[referral_id].add(unit_id)
    units = [
        U(
            u.id,
            u.area,
            u.max_occupants,
            u.wheelchair_accessible,
            u.step_free,
            u.pets_allowed,
            tuple(u.eligibility),
            u.available_since or u.created_at,
        )
        for u in session.scalars(
            select(Unit).where(Unit.region == region, Unit.status == "available")
        )
    ]
    people = [
        P(
            r.id,
            r.adults,
            r.children,
            r.pets,
            r.needs_wheelchair,
            r.needs_step_free,
            r.veteran,
            r.gender,
            r.date_of_birth,
            tuple(r.areas_acceptable),
            tuple(r.areas_avoid),
            r.vulnerability_score,
            r.months_homeless,
            r.created_at,
            frozenset(declined[r.id]),
        )
        for r in session.scalars(
            select(Referral).where(Referral.region == region, Referral.status == "waiting")
        )
    ]
    return units, people


def open_offers(session: Session, region: str, since: datetime | None = None) -> dict[str, str]:
    query = select(Offer.unit_id, Offer.referral_id).where(
        Offer.region == region, Offer.status == "open"
    )
    if since is not None:
        query = query.where(Offer.created_at >= since)
    return {unit_id: referral_id for unit_id, referral_id in session.execute(query)}


def check_invariants(session: Session, region: str | None, today: date) -> None:
    """DESIGN.md 5 after quiescence: one live offer per unit and person; nobody waiting fits."""
    query = select(Offer.unit_id, Offer.referral_id).where(Offer.status.in_(("open", "accepted")))
    if region is not None:
        query = query.where(Offer.region == region)
    live = session.execute(query).all()
    per_unit = Counter(unit_id for unit_id, _ in live)
    per_person = Counter(referral_id for _, referral_id in live)
    assert max(per_unit.values(), default=0) <= 1, "a unit holds two live offers"
    assert max(per_person.values(), default=0) <= 1, "a person holds two live offers"
    regions = [region] if region else list(session.scalars(select(Unit.region).distinct()))
    for each in regions:
        units, people = load_state(session, each)
        for u in units:
            assert u.id not in per_unit, f"available unit {u.id} has a live offer"
            waiting_fit = [p.id for p in people if fits(p, u, today)]
            assert not waiting_fit, f"unit {u.id} available while {waiting_fit[:3]} wait and fit"
    offered = select(Referral).where(Referral.status == "offered")
    if region is not None:
        offered = offered.where(Referral.region == region)
    for referral in session.scalars(offered):
        assert referral.id in per_person, f"referral {referral.id} offered without a live offer"


def oracle_sorted(units: list[U], people: list[P], today: date) -> dict[str, str]:
    """The same greedy, fast enough for 10k x 100k: people sorted once by priority, each unit
    takes the first eligible person (first one needing its special feature, if it has one)."""
    by_priority = sorted(people, key=lambda p: (-p.score, -p.months, p.referred_at, p.id))
    offered: dict[str, str] = {}
    taken: set[str] = set()
    for u in sorted(units, key=unit_order):
        chosen = None
        if special(u):
            chosen = next(
                (
                    p
                    for p in by_priority
                    if p.id not in taken and (p.wheelchair or p.step_free) and fits(p, u, today)
                ),
                None,
            )
        if chosen is None:
            chosen = next((p for p in by_priority if p.id not in taken and fits(p, u, today)), None)
        if chosen is not None:
            offered[u.id] = chosen.id
            taken.add(chosen.id)
    return offered
