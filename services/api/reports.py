"""Reports for commissioners and operations; outreach and providers see their own slice."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import Caller
from services.api.deps import Db, require
from shared.domain.eligibility import PersonFacts, UnitFacts
from shared.domain.reports import (
    BANDS,
    TenancyFacts,
    distribution,
    priority_band,
    retention,
    unmet_need,
)
from shared.domain.vocabulary import ProgrammeTag, ReferralStatus, Role
from shared.models import Offer, Referral, Tenancy, Unit, utcnow

router = APIRouter(prefix="/v1/reports", tags=["reports"])

ReportCaller = Annotated[
    Caller,
    Depends(require(Role.operations, Role.admin, Role.outreach, Role.housing_provider)),
]
SECONDS_PER_DAY = 86_400


def whole_region(caller: Caller) -> bool:
    return caller.role in (Role.operations, Role.admin)


def in_region(column: Any, region: str | None) -> ColumnElement[bool]:
    return column == region if region else true()


def referral_slice(caller: Caller) -> ColumnElement[bool]:
    """Referrals the caller's figures are about."""
    if whole_region(caller) or caller.role is Role.housing_provider:
        return true()
    return Referral.organization_id == caller.organization_id


def offer_slice(caller: Caller) -> ColumnElement[bool]:
    if whole_region(caller):
        return true()
    if caller.role is Role.housing_provider:
        return Offer.unit_id.in_(
            select(Unit.id).where(Unit.organization_id == caller.organization_id)
        )
    return Offer.referral_id.in_(
        select(Referral.id).where(Referral.organization_id == caller.organization_id)
    )


def tenancy_slice(caller: Caller) -> ColumnElement[bool]:
    if whole_region(caller):
        return true()
    if caller.role is Role.housing_provider:
        return Tenancy.organization_id == caller.organization_id
    return Tenancy.referral_id.in_(
        select(Referral.id).where(Referral.organization_id == caller.organization_id)
    )


def scope_name(caller: Caller) -> str:
    return "region" if whole_region(caller) else "organization"


@router.get("/summary")
async def summary(session: Db, caller: ReportCaller, region: str | None = None) -> dict[str, Any]:
    """Waiting by priority band, days to offer and to move-in, retention, declines and expiries."""
    today = utcnow().date()
    waiting_scores = await session.scalars(
        select(Referral.vulnerability_score).where(
            Referral.status == ReferralStatus.waiting,
            in_region(Referral.region, region),
            referral_slice(caller) if caller.role is Role.outreach else true(),
        )
    )
    bands = dict.fromkeys(BANDS, 0)
    for score in waiting_scores:
        bands[priority_band(score)] += 1
    first_offers = (
        select(Offer.referral_id, func.min(Offer.created_at).label("first_at"))
        .where(offer_slice(caller))
        .group_by(Offer.referral_id)
        .subquery()
    )
    to_offer = [
        (first_at - referred_at).total_seconds() / SECONDS_PER_DAY
        for referred_at, first_at in await session.execute(
            select(Referral.created_at, first_offers.c.first_at)
            .join(first_offers, first_offers.c.referral_id == Referral.id)
            .where(in_region(Referral.region, region))
        )
    ]
    tenancies = (
        await session.execute(
            select(Tenancy.started_on, Tenancy.status, Tenancy.end_reason, Referral.created_at)
            .join(Referral, Referral.id == Tenancy.referral_id)
            .where(in_region(Tenancy.region, region), tenancy_slice(caller))
        )
    ).all()
    to_move_in = [
        float((started_on - referred_at.date()).days) for started_on, _, _, referred_at in tenancies
    ]
    facts = [
        TenancyFacts(started_on, status, reason) for started_on, status, reason, _ in tenancies
    ]
    outcomes = {
        status: count
        for status, count in (
            await session.execute(
                select(Offer.status, func.count())
                .where(
                    Offer.status.in_(("declined", "expired")),
                    in_region(Offer.region, region),
                    offer_slice(caller),
                )
                .group_by(Offer.status)
            )
        )
    }
    return {
        "region": region,
        "scope": scope_name(caller),
        "as_of": today.isoformat(),
        "waiting_by_priority_band": bands,
        "days_referral_to_offer": distribution(to_offer),
        "days_referral_to_move_in": distribution(to_move_in),
        "retention": {
            "6_months": retention(facts, months=6, today=today),
            "12_months": retention(facts, months=12, today=today),
        },
        "offers": {"declined": outcomes.get("declined", 0), "expired": outcomes.get("expired", 0)},
    }


async def waiting_people(
    session: AsyncSession, caller: Caller, region: str | None
) -> list[PersonFacts]:
    rows = await session.execute(
        select(
            Referral.id,
            Referral.adults,
            Referral.children,
            Referral.pets,
            Referral.needs_wheelchair,
            Referral.needs_step_free,
            Referral.veteran,
            Referral.gender,
            Referral.date_of_birth,
        ).where(
            Referral.status == ReferralStatus.waiting,
            in_region(Referral.region, region),
            referral_slice(caller) if caller.role is Role.outreach else true(),
        )
    )
    return [
        PersonFacts(
            id=row.id,
            adults=row.adults,
            children=row.children,
            pets=row.pets,
            needs_wheelchair=row.needs_wheelchair,
            needs_step_free=row.needs_step_free,
            veteran=row.veteran,
            gender=row.gender,
            date_of_birth=row.date_of_birth,
        )
        for row in rows
    ]


@router.get("/unmet-need")
async def unmet(session: Db, caller: ReportCaller, region: str | None = None) -> dict[str, Any]:
    """Waiting households by need profile, with the number of units that could ever fit them."""
    people = await waiting_people(session, caller, region)
    units = [
        UnitFacts(
            id=row.id,
            area=row.area,
            max_occupants=row.max_occupants,
            wheelchair_accessible=row.wheelchair_accessible,
            step_free=row.step_free,
            pets_allowed=row.pets_allowed,
            eligibility=tuple(ProgrammeTag(tag) for tag in row.eligibility or ()),
        )
        for row in await session.execute(
            select(
                Unit.id,
                Unit.area,
                Unit.max_occupants,
                Unit.wheelchair_accessible,
                Unit.step_free,
                Unit.pets_allowed,
                Unit.eligibility,
            ).where(in_region(Unit.region, region))
        )
    ]
    return {
        "region": region,
        "scope": scope_name(caller),
        "profiles": unmet_need(people, units, utcnow().date()),
    }
