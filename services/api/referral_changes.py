"""Listing referrals, changing them (rematch) and withdrawing them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from sqlalchemy import select, update

from services.api.audit import record
from services.api.deps import AnyCaller, Db, OutreachCaller
from services.api.errors import Problem
from services.api.pagination import encode_cursor, page, split_page
from services.api.publishing import commit
from services.api.referrals import current_offer_and_support, referral_out
from services.api.schemas.offer import WithdrawBody
from services.api.schemas.referral import ReferralOut, ReferralPage, ReferralUpdate
from services.api.scope import get_visible, visible_to
from shared.domain import offers as offer_rules
from shared.domain.events import Topic
from shared.domain.lifecycle import LIVE_OFFER_STATUSES
from shared.domain.vocabulary import ReferralStatus
from shared.models import (
    IdempotencyKey,
    Offer,
    Referral,
    SupportAssignment,
    Unit,
    utcnow,
)
from shared.outbox import emit, emit_all

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])

CLOSED = (ReferralStatus.withdrawn,)


@router.get("", response_model=ReferralPage)
async def list_referrals(
    session: Db,
    caller: AnyCaller,
    status: ReferralStatus | None = None,
    changed_since: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ReferralPage:
    """The caller's organization's referrals, oldest change first, paginated."""
    query = select(Referral).where(visible_to(caller, Referral))
    if status is not None:
        query = query.where(Referral.status == status)
    paged = page(query, Referral, changed_since=changed_since, cursor=cursor, limit=limit)
    items, next_cursor = split_page(list(await session.scalars(paged)), limit)
    shown = []
    for referral in items:
        offer, assignment = await current_offer_and_support(session, referral.id)
        shown.append(referral_out(referral, offer, assignment))
    last = encode_cursor(items[-1].updated_at, items[-1].id) if items else changed_since or cursor
    record(session, caller, "read", "referral", [referral.id for referral in items])
    await session.commit()
    return ReferralPage(items=shown, next_cursor=next_cursor, cursor=last)


@router.patch("/{referral_id}", response_model=ReferralOut)
async def update_referral(
    referral_id: str,
    body: ReferralUpdate,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: OutreachCaller,
) -> ReferralOut:
    """Change household, needs, areas, contact or priority inputs; the region is matched again."""
    referral = await get_visible(session, caller, Referral, referral_id, lock=True)
    if referral.status in CLOSED:
        raise Problem(409, f"The referral is {referral.status}; it cannot be changed.")
    if referral.erased_at is not None and body.person is not None:
        raise Problem(409, "The person's details were erased; they cannot be set again.")
    if body.person is not None:
        for field, value in body.person.model_dump(exclude_unset=True).items():
            setattr(referral, "person_name" if field == "name" else field, value)
    if body.household is not None:
        referral.adults, referral.children, referral.pets = (
            body.household.adults,
            body.household.children,
            body.household.pets,
        )
    if body.needs is not None:
        referral.needs_wheelchair = body.needs.wheelchair
        referral.needs_step_free = body.needs.step_free
    if body.areas is not None:
        referral.areas_acceptable, referral.areas_avoid = body.areas.acceptable, body.areas.avoid
    if body.priority is not None:
        referral.vulnerability_score = body.priority.vulnerability_score
        referral.months_homeless = body.priority.months_homeless_last_3_years
        referral.nights_unsheltered = body.priority.nights_unsheltered_last_year
    referral.version += 1
    referral.updated_at = utcnow()
    record(session, caller, "update", "referral", [referral.id])
    emit(
        session,
        Topic.referral_changed,
        region=referral.region,
        payload={"referral_id": referral.id},
    )
    offer, assignment = await current_offer_and_support(session, referral.id)
    answer = referral_out(referral, offer, assignment)
    await commit(session, request, background)
    return answer


@router.post("/{referral_id}/withdraw", response_model=ReferralOut)
async def withdraw_referral(
    referral_id: str,
    body: WithdrawBody,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: OutreachCaller,
) -> ReferralOut:
    """Withdraw the referral; any open or accepted offer is cancelled and its unit freed."""
    referral = await get_visible(session, caller, Referral, referral_id)
    if referral.status in (ReferralStatus.withdrawn, ReferralStatus.housed):
        raise Problem(409, f"The referral is {referral.status}; it cannot be withdrawn.")
    live = await session.scalar(
        select(Offer).where(Offer.referral_id == referral.id, Offer.status.in_(LIVE_OFFER_STATUSES))
    )
    now = utcnow()
    if live is not None:
        await session.execute(select(Unit).where(Unit.id == live.unit_id).with_for_update())
    referral = (
        await session.execute(
            select(Referral)
            .where(Referral.id == referral.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if live is not None:
        unit = await session.get(Unit, live.unit_id)
        live = await session.get(Offer, live.id, with_for_update=True, populate_existing=True)
        if unit is not None and live is not None and live.status in LIVE_OFFER_STATUSES:
            events = offer_rules.close(
                offer=live,
                referral=referral,
                unit=unit,
                action="cancel",
                now=now,
                reason="referral withdrawn",
            )
            emit_all(session, events, region=referral.region)
    referral.status = ReferralStatus.withdrawn
    referral.withdrawn_reason = body.reason
    referral.version += 1
    referral.updated_at = now
    record(session, caller, "withdraw", "referral", [referral.id])
    emit(
        session,
        Topic.referral_withdrawn,
        region=referral.region,
        payload={"referral_id": referral.id},
    )
    offer, assignment = await current_offer_and_support(session, referral.id)
    answer = referral_out(referral, offer, assignment)
    await commit(session, request, background)
    return answer


@router.delete("/{referral_id}", status_code=204)
async def erase_referral(referral_id: str, session: Db, caller: OutreachCaller) -> Response:
    """Erase the person's personal data; de-identified facts stay for reports."""
    referral = await get_visible(session, caller, Referral, referral_id, lock=True)
    now = utcnow()
    erase_person(referral, now=now)
    record(session, caller, "erase", "referral", [referral.id])
    await session.execute(
        update(Offer).where(Offer.referral_id == referral.id).values(decline_reason=None)
    )
    await session.execute(
        update(SupportAssignment)
        .where(SupportAssignment.referral_id == referral.id)
        .values(step_down_reason=None)
    )
    stored = await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.location == f"/v1/referrals/{referral.id}")
    )
    if stored is not None:
        stored.response = {
            **stored.response,
            "person": {
                "name": None,
                "date_of_birth": None,
                "gender": None,
                "contact": None,
                "erased": True,
            },
        }
    await session.commit()
    return Response(status_code=204)


def erase_person(referral: Referral, *, now: datetime) -> None:
    """Blank the personal fields (the birth year stays, for age-based eligibility and reports)."""
    referral.person_name = None
    referral.date_of_birth = None
    referral.contact = None
    referral.withdrawn_reason = None
    referral.erased_at = now
    referral.version += 1
    referral.updated_at = now
