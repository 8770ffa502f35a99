"""Rule 6: an assignment waiting for capacity gets a team as soon as a place frees, oldest first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.notifier.teams import lock_teams, pick_team
from shared.domain.events import Topic
from shared.domain.lifecycle import assignment_transition
from shared.domain.vocabulary import AssignmentStatus
from shared.models import SupportAssignment, utcnow
from shared.outbox import emit
from shared.queries import placed_unit
from shared.queue import TaskName, celery_app
from shared.worker import in_transaction

BATCH = 100


def assign_waiting(session: Session) -> int:
    """Give pending assignments a team with room, oldest first; returns how many got one."""
    pending = list(
        session.scalars(
            select(SupportAssignment)
            .where(SupportAssignment.status == AssignmentStatus.pending_capacity)
            .order_by(SupportAssignment.created_at, SupportAssignment.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    lock_teams(session, [assignment.region for assignment in pending])
    assigned = 0
    for assignment in pending:
        unit = session.scalar(placed_unit(assignment.referral_id))
        team = pick_team(
            session,
            region=assignment.region,
            kind=assignment.kind,
            area=unit.area if unit else None,
        )
        if team is None:
            continue
        assignment.team_id = team.id
        assignment.status = assignment_transition(assignment.status, "assign")
        assignment.updated_at = utcnow()
        session.flush()
        emit(
            session,
            Topic.support_assigned,
            region=assignment.region,
            payload={
                "assignment_id": assignment.id,
                "referral_id": assignment.referral_id,
                "team_id": team.id,
                "unit_id": unit.id if unit else None,
            },
        )
        assigned += 1
    return assigned


@celery_app.task(name=TaskName.assign_waiting_support)
def assign_waiting_support() -> None:
    """Beat: assign support that waited for capacity (never delays housing)."""
    in_transaction(assign_waiting)
