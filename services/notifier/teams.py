"""Rule 6: support follows the person; a team by kind and spare capacity, least loaded first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session

from services.notifier.bulk import insert_many
from shared.domain.events import Topic
from shared.domain.vocabulary import (
    SUPPORT_KIND_FOR_INTENSITY,
    AssignmentStatus,
    SupportIntensity,
)
from shared.models import OutboxEvent, SupportAssignment, SupportTeam, new_id, utcnow
from shared.outbox import emit_row

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


_LOADS = (
    select(SupportAssignment.team_id, func.count())
    .where(
        SupportAssignment.team_id.in_(bindparam("team_ids", expanding=True)),
        SupportAssignment.status.in_(COUNTS_AGAINST_CAPACITY),
    )
    .group_by(SupportAssignment.team_id)
)


def team_loads(session: Session, team_ids: list[str]) -> dict[str, int]:
    """Assignments currently held by each team (stepped-down ones free their place)."""
    rows = session.execute(_LOADS, {"team_ids": team_ids})
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


class Wanted(NamedTuple):
    """A person offered a home, who needs a team if they have none yet."""

    referral_id: str
    region: str
    support_intensity: str
    unit_id: str | None
    area: str | None
    offer_id: str | None


class Assigned(NamedTuple):
    """What assigning wrote: the assignments and the events emitted (as column values), and the
    teams of the regions read for it (with their organization)."""

    assignments: list[dict[str, Any]]
    events: list[dict[str, Any]]
    teams: list[Any]


def assign_support_all(session: Session, wanted: Sequence[Wanted]) -> Assigned:
    """Give each person without a team one at their first offer, in order; wait in
    pending_capacity where none has room (rule 6). Set-wise: one read of who has a team, the
    regions' teams locked in id order and read with their loads in two statements, then the
    assignments and their events inserted together; each assignment counts against its team
    for the next person."""
    regions = sorted({person.region for person in wanted})
    teams = session.execute(_TEAMS_TO_ASSIGN, {"regions": regions}).all()  # (locked, id order)
    # (read under the team locks: a twin transaction for the same person has committed)
    has_team = set(session.scalars(_ASSIGNED, {"ids": [w.referral_id for w in wanted]}))
    todo: dict[str, Wanted] = {}
    for person in wanted:
        if person.referral_id not in has_team:
            todo.setdefault(person.referral_id, person)
    if not todo:
        return Assigned([], [], list(teams))
    loads = team_loads(session, [team.id for team in teams])
    now = utcnow()
    assignments: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for person in todo.values():
        kind = SUPPORT_KIND_FOR_INTENSITY[SupportIntensity(person.support_intensity)]
        with_room = [
            team
            for team in teams
            if team.region == person.region
            and team.kind == kind
            and (not team.areas or person.area is None or person.area in team.areas)
            and loads.get(team.id, 0) < team.capacity
        ]
        team = (
            min(
                with_room, key=lambda team: (loads.get(team.id, 0) / team.capacity, team.created_at)
            )
            if with_room
            else None
        )
        if team is not None:
            loads[team.id] = loads.get(team.id, 0) + 1
        assignment = {
            "id": new_id(),
            "referral_id": person.referral_id,
            "team_id": team.id if team else None,
            "region": person.region,
            "kind": kind,
            "status": AssignmentStatus.assigned if team else AssignmentStatus.pending_capacity,
            "step_down_reason": None,
            "created_at": now,
            "updated_at": now,
        }
        assignments.append(assignment)
        events.append(
            emit_row(
                session,
                Topic.support_assigned if team else Topic.support_pending_capacity,
                region=person.region,
                payload={
                    "assignment_id": assignment["id"],
                    "referral_id": person.referral_id,
                    "team_id": assignment["team_id"],
                    "unit_id": person.unit_id,
                    "offer_id": person.offer_id,
                },
            )
        )
    insert_many(session, cast(Table, SupportAssignment.__table__), assignments)
    insert_many(session, cast(Table, OutboxEvent.__table__), events)
    return Assigned(assignments, events, list(teams))


_ASSIGNED = select(SupportAssignment.referral_id).where(
    SupportAssignment.referral_id.in_(bindparam("ids", expanding=True))
)
_TEAMS_TO_ASSIGN = (
    select(
        SupportTeam.id,
        SupportTeam.organization_id,
        SupportTeam.region,
        SupportTeam.kind,
        SupportTeam.areas,
        SupportTeam.capacity,
        SupportTeam.created_at,
    )
    .where(SupportTeam.region.in_(bindparam("regions", expanding=True)))
    .order_by(SupportTeam.id)
    .with_for_update()
)
