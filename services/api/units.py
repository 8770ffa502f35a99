"""Units from housing providers: register, change, set available or offline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.deps import AnyCaller, Db, ProviderCaller
from services.api.errors import Problem
from services.api.pagination import encode_cursor, page, split_page
from services.api.publishing import commit
from services.api.regions import check_region
from services.api.schemas.unit import UnitCreate, UnitOut, UnitPage, UnitUpdate
from services.api.scope import get_visible, visible_to
from shared.domain import offers as offer_rules
from shared.domain.events import Topic
from shared.domain.lifecycle import LIVE_OFFER_STATUSES
from shared.domain.vocabulary import OfferStatus, UnitStatus
from shared.models import Offer, Referral, Unit, new_id, utcnow
from shared.outbox import emit, emit_all

router = APIRouter(prefix="/v1/units", tags=["units"])

MATCHING_FIELDS = frozenset(
    {"area", "max_occupants", "wheelchair_accessible", "step_free", "pets_allowed", "eligibility"}
)


def unit_out(unit: Unit) -> UnitOut:
    return UnitOut.model_validate(unit, from_attributes=True)


def announce_available(unit: Unit) -> None:
    """A unit just became available: stamp it (longest-available order)."""
    unit.status = UnitStatus.available
    unit.available_since = utcnow()


async def cancel_open_offer(session: AsyncSession, unit: Unit) -> None:
    """Taking an offered unit offline cancels its open offer (409 if it was accepted)."""
    offer = await session.scalar(
        select(Offer)
        .where(Offer.unit_id == unit.id, Offer.status.in_(LIVE_OFFER_STATUSES))
        .with_for_update()
    )
    if offer is None:
        return
    if offer.status != OfferStatus.open:
        raise Problem(409, f"The offer on this unit is {offer.status}; it cannot be withdrawn now.")
    referral = (
        await session.execute(
            select(Referral).where(Referral.id == offer.referral_id).with_for_update()
        )
    ).scalar_one()
    events = offer_rules.close(
        offer=offer,
        referral=referral,
        unit=unit,
        action="cancel",
        now=utcnow(),
        reason="unit taken offline",
    )
    emit_all(session, [e for e in events if e.topic != Topic.unit_available], region=unit.region)


@router.post("", status_code=201, response_model=UnitOut)
async def create_unit(
    body: UnitCreate,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: ProviderCaller,
) -> UnitOut:
    """Register a unit; if it is available it is matched at once."""
    check_region(caller, body.region)
    unit = Unit(
        id=new_id(),
        organization_id=caller.organization_id,
        **body.model_dump(exclude={"status", "eligibility"}),
        eligibility=[str(tag) for tag in body.eligibility],
        status=UnitStatus.offline,
    )
    if body.status == UnitStatus.available:
        announce_available(unit)
    session.add(unit)
    await session.flush()
    if unit.status == UnitStatus.available:
        emit(session, Topic.unit_available, region=unit.region, payload={"unit_id": unit.id})
    await commit(session, request, background)
    return unit_out(unit)


@router.get("", response_model=UnitPage)
async def list_units(
    session: Db,
    caller: AnyCaller,
    status: UnitStatus | None = None,
    changed_since: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> UnitPage:
    """The caller's own units, oldest change first, paginated."""
    query = select(Unit).where(visible_to(caller, Unit))
    if status is not None:
        query = query.where(Unit.status == status)
    paged = page(query, Unit, changed_since=changed_since, cursor=cursor, limit=limit)
    items, next_cursor = split_page(list(await session.scalars(paged)), limit)
    last = encode_cursor(items[-1].updated_at, items[-1].id) if items else changed_since or cursor
    return UnitPage(items=[unit_out(u) for u in items], next_cursor=next_cursor, cursor=last)


@router.get("/{unit_id}", response_model=UnitOut)
async def get_unit(unit_id: str, session: Db, caller: AnyCaller) -> UnitOut:
    """One of the caller's units."""
    return unit_out(await get_visible(session, caller, Unit, unit_id))


@router.patch("/{unit_id}", response_model=UnitOut)
async def update_unit(
    unit_id: str,
    body: UnitUpdate,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: ProviderCaller,
) -> UnitOut:
    """Change a unit's features or set it available/offline; any change rematches its region."""
    unit = await get_visible(session, caller, Unit, unit_id, lock=True)
    changes = body.model_dump(exclude_unset=True, exclude={"status"})
    if "eligibility" in changes:
        changes["eligibility"] = [str(tag) for tag in body.eligibility or []]
    for field, value in changes.items():
        if value is None:
            raise Problem(422, f"{field} cannot be null.")
        setattr(unit, field, value)
    features_changed = bool(MATCHING_FIELDS & changes.keys())
    became_available = False
    if body.status is not None and body.status != unit.status:
        if unit.status == UnitStatus.occupied:
            raise Problem(409, "The unit is occupied; a tenancy holds it.")
        if unit.status == UnitStatus.offered:
            if body.status == UnitStatus.available:
                raise Problem(409, "The unit is offered; it is not free to announce.")
            await cancel_open_offer(session, unit)
        if body.status == UnitStatus.available:
            announce_available(unit)
            became_available = True
        else:
            unit.status = UnitStatus.offline
    if changes or body.status is not None:
        unit.version += 1
        unit.updated_at = utcnow()
    if became_available:
        emit(session, Topic.unit_available, region=unit.region, payload={"unit_id": unit.id})
    elif features_changed and unit.status == UnitStatus.available:
        emit(session, Topic.unit_changed, region=unit.region, payload={"unit_id": unit.id})
    await commit(session, request, background)
    return unit_out(unit)
