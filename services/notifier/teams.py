"""Rule 6: support follows the person; a team by kind and spare capacity, least loaded first."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from shared.domain.events import Topic
from shared.domain.vocabulary import (
    SUPPORT_KIND_FOR_INTENSITY,
    AssignmentStatus,
    SupportIntensity,
)
from shared.models import Referral, SupportAssignment, SupportTeam, Unit
from shared.outbox import emit

COUNTS_AGAINST_CAPACITY = (AssignmentStatus.assigned, AssignmentStatus.active)

_TEAMS_OF_REGIONS = (
    select(SupportTeam.id)
    .where(SupportTeam.region.in_(bindparam("regions", expanding=True)))
    .order_by(SupportTeam.id)
    .with_for_update()
)


def lock_teams(session: Session, regions: list[str | None]) -> None:
    """Lock every team of these regions, in id order, before assigning several people.

    Every transaction that assigns takes team locks in id order (pick_team locks a region's
    teams of one kind in id order), so none waits for a lower id while holding a higher one:
    one assigning several people of different kinds must take them all first, or two such
    transactions could each hold what the other waits for."""
    named = sorted({region for region in regions if region})
    if named:
        session.execute(_TEAMS_OF_REGIONS, {"regions": named}).all()


def team_loads(session: Session, team_ids: list[str]) -> dict[str, int]:
    """Assignments currently held by each team (stepped-down ones free their place)."""
    rows = session.execute(
        select(SupportAssignment.team_id, func.count())
        .where(
            SupportAssignment.team_id.in_(team_ids),
            SupportAssignment.status.in_(COUNTS_AGAINST_CAPACITY),
        )
        .group_by(SupportAssignment.team_id)
    )
    return {team_id: count for team_id, count in rows if team_id is not None}


def pick_team(session: Session, *, region: str, kind: str, area: str | None) -> SupportTeam | None:
    """The least-loaded team of the kind with room, covering the area; rows locked for the count."""
    teams = list(
        session.scalars(
            select(SupportTeam)
            .where(SupportTeam.region == region, SupportTeam.kind == kind)
            .order_by(SupportTeam.id)
            .with_for_update()
        )
    )
    teams = [team for team in teams if not team.areas or area is None or area in team.areas]
    loads = team_loads(session, [team.id for team in teams])
    with_room = [team for team in teams if loads.get(team.id, 0) < team.capacity]
    if not with_room:
        return None
    return min(with_room, key=lambda team: (loads.get(team.id, 0) / team.capacity, team.created_at))


def assign_support(
    session: Session, *, referral: Referral, unit: Unit | None, offer_id: str | None = None
) -> None:
    """Give the person a team at their first offer; wait in pending_capacity if none has room."""
    existing = session.scalar(
        select(SupportAssignment).where(SupportAssignment.referral_id == referral.id)
    )
    if existing is not None:
        return
    kind = SUPPORT_KIND_FOR_INTENSITY[SupportIntensity(referral.support_intensity)]
    team = pick_team(session, region=referral.region, kind=kind, area=unit.area if unit else None)
    assignment = SupportAssignment(
        referral_id=referral.id,
        team_id=team.id if team else None,
        region=referral.region,
        kind=kind,
        status=AssignmentStatus.assigned if team else AssignmentStatus.pending_capacity,
    )
    session.add(assignment)
    session.flush()
    topic = Topic.support_assigned if team else Topic.support_pending_capacity
    emit(
        session,
        topic,
        region=referral.region,
        payload={
            "assignment_id": assignment.id,
            "referral_id": referral.id,
            "team_id": assignment.team_id,
            "unit_id": unit.id if unit else None,
            "offer_id": offer_id,
        },
    )
