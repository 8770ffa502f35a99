"""Support teams (support providers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.audit import record
from services.api.deps import Db, SupportCaller
from services.api.errors import Problem
from services.api.pagination import encode_cursor, page, split_page
from services.api.publishing import commit
from services.api.regions import check_region
from services.api.schemas.support import SupportTeamCreate, SupportTeamOut
from services.api.schemas.tenancy import AssignmentOut, AssignmentPage, StepDownBody
from services.api.scope import get_visible, visible_to
from shared.domain.events import Topic
from shared.domain.lifecycle import HOLDS_A_PLACE, assignment_transition
from shared.domain.vocabulary import AssignmentStatus
from shared.models import (
    Referral,
    SupportAssignment,
    SupportTeam,
    new_id,
    utcnow,
)
from shared.outbox import emit
from shared.queries import placed_unit

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


assignments = APIRouter(prefix="/v1/support-assignments", tags=["support"])


async def assignment_out(session: AsyncSession, assignment: SupportAssignment) -> AssignmentOut:
    """The assignment with what the team needs to go and meet the person."""
    referral = await session.get(Referral, assignment.referral_id)
    assert referral is not None
    unit = await session.scalar(placed_unit(referral.id))
    return AssignmentOut.model_validate(
        {
            "id": assignment.id,
            "referral_id": assignment.referral_id,
            "team_id": assignment.team_id,
            "region": assignment.region,
            "kind": assignment.kind,
            "status": assignment.status,
            "step_down_reason": assignment.step_down_reason,
            "person": {
                "name": referral.person_name,
                "date_of_birth": referral.date_of_birth,
                "gender": referral.gender,
                "contact": referral.contact,
                "erased": referral.erased_at is not None,
            },
            "household": {
                "adults": referral.adults,
                "children": referral.children,
                "pets": referral.pets,
            },
            "needs": {
                "wheelchair": referral.needs_wheelchair,
                "step_free": referral.needs_step_free,
            },
            "unit": {"id": unit.id, "area": unit.area, "reference": unit.reference}
            if unit
            else None,
            "created_at": assignment.created_at,
            "updated_at": assignment.updated_at,
        }
    )


@assignments.get("", response_model=AssignmentPage)
async def list_assignments(
    session: Db,
    caller: SupportCaller,
    status: AssignmentStatus | None = None,
    changed_since: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AssignmentPage:
    """The caller's teams' assignments, with the person's details they need."""
    query = select(SupportAssignment).where(visible_to(caller, SupportAssignment))
    if status is not None:
        query = query.where(SupportAssignment.status == status)
    paged = page(query, SupportAssignment, changed_since=changed_since, cursor=cursor, limit=limit)
    items, next_cursor = split_page(list(await session.scalars(paged)), limit)
    shown = [await assignment_out(session, assignment) for assignment in items]
    record(session, caller, "read", "referral", [assignment.referral_id for assignment in items])
    await session.commit()
    last = encode_cursor(items[-1].updated_at, items[-1].id) if items else changed_since or cursor
    return AssignmentPage(items=shown, next_cursor=next_cursor, cursor=last)


async def change(
    session: Db, caller: SupportCaller, assignment_id: str, action: str
) -> SupportAssignment:
    """Apply one transition to an own assignment (409 in the wrong state); never the tenancy."""
    assignment = await get_visible(session, caller, SupportAssignment, assignment_id, lock=True)
    if action == "resume" and assignment.team_id is not None:
        team = (
            await session.execute(
                select(SupportTeam).where(SupportTeam.id == assignment.team_id).with_for_update()
            )
        ).scalar_one()
        held = await session.scalar(
            select(func.count())
            .select_from(SupportAssignment)
            .where(
                SupportAssignment.team_id == team.id,
                SupportAssignment.status.in_(HOLDS_A_PLACE),
            )
        )
        if assignment.status == AssignmentStatus.stepped_down and (held or 0) >= team.capacity:
            raise Problem(409, "The team is at capacity; support can resume when a place frees.")
    assignment.status = assignment_transition(assignment.status, action)
    assignment.updated_at = utcnow()
    record(session, caller, action, "support_assignment", [assignment.id])
    return assignment


@assignments.post("/{assignment_id}/acknowledge", response_model=AssignmentOut)
async def acknowledge(assignment_id: str, session: Db, caller: SupportCaller) -> AssignmentOut:
    """The team has taken the person on: `active`."""
    assignment = await change(session, caller, assignment_id, "acknowledge")
    answer = await assignment_out(session, assignment)
    await session.commit()
    return answer


@assignments.post("/{assignment_id}/step-down", response_model=AssignmentOut)
async def step_down(
    assignment_id: str,
    body: StepDownBody,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: SupportCaller,
) -> AssignmentOut:
    """Support steps down (the place frees for someone waiting); the tenancy is untouched."""
    assignment = await change(session, caller, assignment_id, "step_down")
    assignment.step_down_reason = body.reason
    emit(
        session,
        Topic.support_stepped_down,
        region=assignment.region,
        payload={
            "assignment_id": assignment.id,
            "referral_id": assignment.referral_id,
            "team_id": assignment.team_id,
        },
    )
    answer = await assignment_out(session, assignment)
    await commit(session, request, background)
    return answer


@assignments.post("/{assignment_id}/resume", response_model=AssignmentOut)
async def resume(
    assignment_id: str,
    request: Request,
    background: BackgroundTasks,
    session: Db,
    caller: SupportCaller,
) -> AssignmentOut:
    """Support comes back up (if the team has room); the tenancy is untouched."""
    assignment = await change(session, caller, assignment_id, "resume")
    assignment.step_down_reason = None
    emit(
        session,
        Topic.support_resumed,
        region=assignment.region,
        payload={
            "assignment_id": assignment.id,
            "referral_id": assignment.referral_id,
            "team_id": assignment.team_id,
        },
    )
    answer = await assignment_out(session, assignment)
    await commit(session, request, background)
    return answer
