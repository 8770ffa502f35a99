"""Offers: read by the provider of the unit and the outreach org of the person; answered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from sqlalchemy import select

from services.api.audit import record
from services.api.auth import Caller
from services.api.deps import AnyCaller, Db, OutreachCaller, ProviderCaller
from services.api.errors import Problem
from services.api.pagination import encode_cursor, page, split_page
from services.api.publishing import commit
from services.api.schemas.offer import DeclineBody, OfferOut, OfferPage
from services.api.schemas.tenancy import MoveInBody, TenancyOut
from services.api.scope import get_visible, visible_to
from services.api.tenancies import tenancy_out
from shared.domain import offers as offer_rules
from shared.domain import tenancy as tenancy_rules
from shared.domain.priority import readable
from shared.domain.vocabulary import OfferStatus, Role
from shared.models import Offer, Referral, Tenancy, Unit, new_id, utcnow
from shared.outbox import emit_all

router = APIRouter(prefix="/v1/offers", tags=["offers"])


def offer_out(offer: Offer) -> OfferOut:
    shown = OfferOut.model_validate(offer, from_attributes=True)
    shown.explanation = readable(offer.explanation)
    return shown


@router.get("", response_model=OfferPage)
async def list_offers(
    session: Db,
    caller: AnyCaller,
    status: OfferStatus | None = None,
    changed_since: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> OfferPage:
    """Offers on the caller's units (providers) or for its referrals (outreach)."""
    query = select(Offer).where(visible_to(caller, Offer))
    if status is not None:
        query = query.where(Offer.status == status)
    rows = list(
        await session.scalars(
            page(query, Offer, changed_since=changed_since, cursor=cursor, limit=limit)
        )
    )
    items, next_cursor = split_page(rows, limit)
    last = encode_cursor(items[-1].updated_at, items[-1].id) if items else changed_since or cursor
    record(session, caller, "read", "offer", [offer.id for offer in items])
    await session.commit()
    return OfferPage(items=[offer_out(o) for o in items], next_cursor=next_cursor, cursor=last)


@router.get("/{offer_id}", response_model=OfferOut)
async def get_offer(offer_id: str, session: Db, caller: AnyCaller) -> OfferOut:
    """One offer with `expires_at` and its `explanation` (inputs, rules checked, rank)."""
    answer = offer_out(await get_visible(session, caller, Offer, offer_id))
    record(session, caller, "read", "offer", [offer_id])
    await session.commit()
    return answer


async def locked_parts(session: Db, offer: Offer) -> tuple[Unit, Referral, Offer]:
    """Lock unit, then person, then offer (the order rounds use), re-reading each."""
    unit = await session.get_one(Unit, offer.unit_id, with_for_update=True, populate_existing=True)
    referral = await session.get_one(
        Referral, offer.referral_id, with_for_update=True, populate_existing=True
    )
    fresh = await session.get_one(Offer, offer.id, with_for_update=True, populate_existing=True)
    return unit, referral, fresh


@router.post("/{offer_id}/accept", response_model=OfferOut)
async def accept_offer(
    offer_id: str,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: OutreachCaller,
) -> OfferOut:
    """The person accepts the home (recorded by outreach on their behalf)."""
    offer = await get_visible(session, caller, Offer, offer_id)
    await check_referrer(session, caller, offer)
    unit, referral, offer = await locked_parts(session, offer)
    events = offer_rules.accept(offer=offer, referral=referral, now=utcnow())
    unit.updated_at = offer.updated_at  # availability pollers see every change on a unit
    record(session, caller, "accept", "offer", [offer.id])
    emit_all(session, events, region=offer.region)
    await commit(session, request, background)
    return offer_out(offer)


@router.post("/{offer_id}/decline", response_model=OfferOut)
async def decline_offer(
    offer_id: str,
    body: DeclineBody,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: OutreachCaller,
) -> OfferOut:
    """The person declines, for any reason: same place and priority; the unit is matched again."""
    offer = await get_visible(session, caller, Offer, offer_id)
    await check_referrer(session, caller, offer)
    unit, referral, offer = await locked_parts(session, offer)
    events = offer_rules.close(
        offer=offer,
        referral=referral,
        unit=unit,
        action="decline",
        now=utcnow(),
        reason=body.reason,
    )
    record(session, caller, "decline", "offer", [offer.id])
    emit_all(session, events, region=offer.region)
    await commit(session, request, background)
    return offer_out(offer)


async def check_referrer(session: Db, caller: Caller, offer: Offer) -> None:
    """Only the organization that referred the person answers for them (others: 404)."""
    if caller.role is Role.admin:
        return
    owner = await session.scalar(
        select(Referral.organization_id).where(Referral.id == offer.referral_id)
    )
    if owner != caller.organization_id:
        raise Problem(404, "No offer with that id.")


@router.post("/{offer_id}/move-in", response_model=TenancyOut)
async def move_in(
    offer_id: str,
    body: MoveInBody,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: ProviderCaller,
) -> TenancyOut:
    """The person moved in: a tenancy starts, the referral is housed, the unit occupied."""
    offer = await get_visible(session, caller, Offer, offer_id)
    unit, referral, offer = await locked_parts(session, offer)
    if caller.role is not Role.admin and unit.organization_id != caller.organization_id:
        raise Problem(404, "No offer with that id.")
    now = utcnow()
    tenancy_rules.move_in(offer=offer, referral=referral, unit=unit, on=body.date, now=now)
    tenancy = Tenancy(
        id=new_id(),
        offer_id=offer.id,
        referral_id=referral.id,
        unit_id=unit.id,
        organization_id=unit.organization_id,
        region=unit.region,
        started_on=body.date,
        status="active",
    )
    session.add(tenancy)
    emit_all(session, [tenancy_rules.started(tenancy)], region=unit.region)
    answer = await tenancy_out(session, tenancy)
    await commit(session, request, background)
    return answer
