"""Who an event concerns, and what its webhook says (composed at send time, after any erasure)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.domain.events import Topic
from shared.domain.vocabulary import OrganizationKind
from shared.models import (
    Offer,
    Organization,
    OutboxEvent,
    Referral,
    SupportAssignment,
    SupportTeam,
    Unit,
)


def _get(session: Session, model: Any, object_id: Any) -> Any:
    return session.get(model, object_id) if object_id else None


def audience(session: Session, event: OutboxEvent) -> list[str]:
    """The organizations an event is about: each gets it about its own objects only."""
    payload = event.payload
    orgs: list[str | None] = []
    referral = _get(session, Referral, payload.get("referral_id"))
    unit = _get(session, Unit, payload.get("unit_id"))
    team = _get(session, SupportTeam, payload.get("team_id"))
    topic = Topic(event.topic)
    if topic is Topic.referral_received:
        orgs = [referral and referral.organization_id]
    elif topic is Topic.unit_available:
        orgs = [unit and unit.organization_id]
    elif topic.value.startswith(("offer.", "tenancy.")):
        orgs = [unit and unit.organization_id, referral and referral.organization_id]
    elif topic is Topic.support_pending_capacity:
        orgs = list(
            session.scalars(
                select(Organization.id).where(Organization.kind == OrganizationKind.operations)
            )
        )
    elif topic.value.startswith("support."):
        orgs = [team and team.organization_id]
    return sorted({org for org in orgs if org})


def person(referral: Referral) -> dict[str, Any]:
    return {
        "name": referral.person_name,
        "date_of_birth": referral.date_of_birth.isoformat() if referral.date_of_birth else None,
        "gender": referral.gender,
        "contact": referral.contact,
    }


def household(referral: Referral) -> dict[str, Any]:
    return {
        "household": {
            "adults": referral.adults,
            "children": referral.children,
            "pets": referral.pets,
        },
        "needs": {"wheelchair": referral.needs_wheelchair, "step_free": referral.needs_step_free},
        "support_intensity": referral.support_intensity,
    }


def unit_brief(unit: Unit) -> dict[str, Any]:
    return {
        "id": unit.id,
        "area": unit.area,
        "reference": unit.reference,
        "bedrooms": unit.bedrooms,
        "max_occupants": unit.max_occupants,
        "wheelchair_accessible": unit.wheelchair_accessible,
        "step_free": unit.step_free,
    }


def compose(session: Session, event: OutboxEvent) -> dict[str, Any]:
    """The `data` of the webhook for this event."""
    payload = event.payload
    data: dict[str, Any] = {key: value for key, value in payload.items() if value is not None}
    referral = _get(session, Referral, payload.get("referral_id"))
    unit = _get(session, Unit, payload.get("unit_id"))
    offer = _get(session, Offer, payload.get("offer_id"))
    if offer is not None:
        data["offer"] = {
            "id": offer.id,
            "status": offer.status,
            "expires_at": offer.expires_at.isoformat(),
        }
    if event.topic == Topic.support_assigned and referral is not None:
        assignment = _get(session, SupportAssignment, payload.get("assignment_id"))
        outreach = session.get(Organization, referral.organization_id)
        data.update(
            {
                "person": person(referral),
                **household(referral),
                "unit": unit_brief(unit) if unit else None,
                "outreach": {"organization": outreach.name if outreach else None},
                "assignment": {"id": assignment.id, "kind": assignment.kind}
                if assignment
                else None,
            }
        )
    elif unit is not None:
        data["unit"] = unit_brief(unit)
    return data
