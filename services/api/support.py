"""Support teams (support providers)."""

from __future__ import annotations

from fastapi import APIRouter

from services.api.deps import Db, SupportCaller
from services.api.regions import check_region
from services.api.schemas.support import SupportTeamCreate, SupportTeamOut
from shared.models import SupportTeam, new_id

router = APIRouter(prefix="/v1/support-teams", tags=["support"])


@router.post("", status_code=201, response_model=SupportTeamOut)
async def create_support_team(
    body: SupportTeamCreate, session: Db, caller: SupportCaller
) -> SupportTeamOut:
    """Register a team with its kind, areas and caseload capacity."""
    check_region(caller, body.region)
    team = SupportTeam(id=new_id(), organization_id=caller.organization_id, **body.model_dump())
    session.add(team)
    await session.commit()
    return SupportTeamOut.model_validate(team, from_attributes=True)
