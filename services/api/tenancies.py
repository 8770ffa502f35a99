"""Tenancies (providers): absences that never end them, and ending them (unit matched again)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.audit import record
from services.api.deps import AnyCaller, Db, ProviderCaller
from services.api.errors import Problem
from services.api.pagination import encode_cursor, page, split_page
from services.api.publishing import commit
from services.api.schemas.tenancy import (
    AbsenceCreate,
    AbsenceEnd,
    AbsenceOut,
    TenancyEnd,
    TenancyOut,
    TenancyPage,
)
from services.api.scope import get_visible, visible_to
from shared.domain import tenancy as tenancy_rules
from shared.domain.tenancy import TenancyStatus
from shared.models import Absence, SupportAssignment, Tenancy, Unit, new_id, utcnow
from shared.outbox import emit_all

router = APIRouter(prefix="/v1/tenancies", tags=["tenancies"])


async def tenancy_out(session: AsyncSession, tenancy: Tenancy) -> TenancyOut:
    """The tenancy with its absences and the person's support team."""
    absences = (
        list(
            await session.scalars(
                select(Absence).where(Absence.tenancy_id == tenancy.id).order_by(Absence.from_date)
            )
        )
        if tenancy.created_at is not None
        else []
    )
    assignment = await session.scalar(
        select(SupportAssignment).where(SupportAssignment.referral_id == tenancy.referral_id)
    )
    support: dict[str, Any] | None = None
    if assignment is not None:
        support = {
            "assignment_id": assignment.id,
            "team_id": assignment.team_id,
            "kind": assignment.kind,
            "status": assignment.status,
        }
    return TenancyOut.model_validate(
        {
            "id": tenancy.id,
            "offer_id": tenancy.offer_id,
            "referral_id": tenancy.referral_id,
            "unit_id": tenancy.unit_id,
            "region": tenancy.region,
            "status": tenancy.status,
            "started_on": tenancy.started_on,
            "ended_on": tenancy.ended_on,
            "end_reason": tenancy.end_reason,
            "absences": [absence_out(absence) for absence in absences],
            "support": support,
            "created_at": tenancy.created_at or utcnow(),
            "updated_at": tenancy.updated_at or utcnow(),
        }
    )


def absence_out(absence: Absence) -> AbsenceOut:
    return AbsenceOut(
        id=absence.id,
        kind=absence.kind,
        from_=absence.from_date,
        to=absence.to_date,
        created_at=absence.created_at,
    )


@router.get("", response_model=TenancyPage)
async def list_tenancies(
    session: Db,
    caller: AnyCaller,
    status: TenancyStatus | None = None,
    changed_since: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TenancyPage:
    """Tenancies in the caller's units (or of the caller's referrals), with the support team."""
    query = select(Tenancy).where(visible_to(caller, Tenancy))
    if status is not None:
        query = query.where(Tenancy.status == status)
    paged = page(query, Tenancy, changed_since=changed_since, cursor=cursor, limit=limit)
    items, next_cursor = split_page(list(await session.scalars(paged)), limit)
    shown = [await tenancy_out(session, tenancy) for tenancy in items]
    record(session, caller, "read", "tenancy", [tenancy.id for tenancy in items])
    await session.commit()
    last = encode_cursor(items[-1].updated_at, items[-1].id) if items else changed_since or cursor
    return TenancyPage(items=shown, next_cursor=next_cursor, cursor=last)


@router.get("/{tenancy_id}", response_model=TenancyOut)
async def get_tenancy(tenancy_id: str, session: Db, caller: AnyCaller) -> TenancyOut:
    """One tenancy with its absences and support team."""
    answer = await tenancy_out(session, await get_visible(session, caller, Tenancy, tenancy_id))
    record(session, caller, "read", "tenancy", [tenancy_id])
    await session.commit()
    return answer


async def own_tenancy(session: Db, caller: ProviderCaller, tenancy_id: str) -> Tenancy:
    """The provider's own tenancy, locked (the referrer may read but not change it)."""
    tenancy = await get_visible(session, caller, Tenancy, tenancy_id, lock=True)
    if caller.role != "admin" and tenancy.organization_id != caller.organization_id:
        raise Problem(404, "No tenancy with that id.")
    return tenancy


@router.post("/{tenancy_id}/absences", status_code=201, response_model=AbsenceOut)
async def record_absence(
    tenancy_id: str, body: AbsenceCreate, session: Db, caller: ProviderCaller
) -> AbsenceOut:
    """Hospital, prison or other time away: the tenancy stays active, the home is kept."""
    tenancy = await own_tenancy(session, caller, tenancy_id)
    if tenancy.status != TenancyStatus.active:
        raise Problem(409, "The tenancy has ended.")
    open_absence = await session.scalar(
        select(Absence.id).where(Absence.tenancy_id == tenancy.id, Absence.to_date.is_(None))
    )
    if open_absence is not None:
        raise Problem(409, "An absence is already open; end it first.")
    if body.from_ < tenancy.started_on:
        raise Problem(422, "An absence cannot start before the tenancy.")
    absence = Absence(
        id=new_id(), tenancy_id=tenancy.id, kind=body.kind, from_date=body.from_, note=body.note
    )
    session.add(absence)
    tenancy.updated_at = utcnow()
    await session.flush()
    answer = absence_out(absence)
    await session.commit()
    return answer


@router.post("/{tenancy_id}/absences/{absence_id}/end", response_model=AbsenceOut)
async def end_absence(
    tenancy_id: str,
    absence_id: str,
    body: AbsenceEnd | None,
    session: Db,
    caller: ProviderCaller,
) -> AbsenceOut:
    """The person is back."""
    tenancy = await own_tenancy(session, caller, tenancy_id)
    absence = await session.scalar(
        select(Absence).where(Absence.id == absence_id, Absence.tenancy_id == tenancy.id)
    )
    if absence is None:
        raise Problem(404, "No absence with that id.")
    if absence.to_date is not None:
        raise Problem(409, "The absence has already ended.")
    to_date = (body.to if body else None) or utcnow().date()
    if to_date < absence.from_date:
        raise Problem(422, "An absence cannot end before it started.")
    absence.to_date = to_date
    tenancy.updated_at = utcnow()
    answer = absence_out(absence)
    await session.commit()
    return answer


@router.post("/{tenancy_id}/end", response_model=TenancyOut)
async def end_tenancy(
    tenancy_id: str,
    body: TenancyEnd,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: ProviderCaller,
) -> TenancyOut:
    """End the tenancy with a reason: the unit is available again and matched at once."""
    tenancy = await own_tenancy(session, caller, tenancy_id)
    unit = (
        await session.execute(select(Unit).where(Unit.id == tenancy.unit_id).with_for_update())
    ).scalar_one()
    if body.date < tenancy.started_on:
        raise Problem(422, "A tenancy cannot end before it started.")
    now = utcnow()
    events = tenancy_rules.end(
        tenancy=tenancy, unit=unit, reason=body.reason, on=body.date, now=now
    )
    unit.available_since = now
    emit_all(session, events, region=tenancy.region)
    answer = await tenancy_out(session, tenancy)
    await commit(session, request, background)
    return answer
