"""Units from housing providers: register, change, set available or offline."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request

from services.api.deps import AnyCaller, Db, ProviderCaller
from services.api.errors import Problem
from services.api.publishing import commit
from services.api.regions import check_region
from services.api.schemas.unit import UnitCreate, UnitOut, UnitUpdate
from services.api.scope import get_visible
from shared.domain.events import Topic
from shared.domain.vocabulary import UnitStatus
from shared.models import Unit, new_id, utcnow
from shared.outbox import emit

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
        if unit.status in (UnitStatus.offered, UnitStatus.occupied):
            raise Problem(409, f"The unit is {unit.status}; it cannot be set {body.status} now.")
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
