"""The one way routes look objects up: filtered by the caller's organization (else 404)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import Caller
from services.api.errors import Problem
from shared.domain.vocabulary import Role
from shared.models import (
    Delivery,
    Offer,
    Referral,
    SupportAssignment,
    SupportTeam,
    Tenancy,
    Unit,
    WebhookEndpoint,
)

Model = TypeVar(
    "Model",
    Referral,
    Unit,
    Offer,
    SupportTeam,
    SupportAssignment,
    WebhookEndpoint,
    Tenancy,
    Delivery,
)


def noun(table: str) -> str:
    """`delivery` for `deliveries`, `webhook endpoint` for `webhook_endpoints`."""
    singular = table[:-3] + "y" if table.endswith("ies") else table[:-1]
    return singular.replace("_", " ")


def visible_to(caller: Caller, model: type[Any]) -> ColumnElement[bool]:
    """The condition selecting the model's rows this caller's organization may see."""
    if caller.role is Role.admin:
        return true()
    org = caller.organization_id
    if model is Offer:
        own_units = select(Unit.id).where(Unit.organization_id == org)
        own_referrals = select(Referral.id).where(Referral.organization_id == org)
        return Offer.unit_id.in_(own_units) | Offer.referral_id.in_(own_referrals)
    if model is Tenancy:
        own_referrals = select(Referral.id).where(Referral.organization_id == org)
        return (Tenancy.organization_id == org) | Tenancy.referral_id.in_(own_referrals)
    if model is SupportAssignment:
        own_teams = select(SupportTeam.id).where(SupportTeam.organization_id == org)
        return SupportAssignment.team_id.in_(own_teams)
    owner: ColumnElement[str] = model.organization_id
    return owner == org


async def get_visible(
    session: AsyncSession, caller: Caller, model: type[Model], object_id: str, *, lock: bool = False
) -> Model:
    """The object if the caller's organization may see it; 404 otherwise (never 403)."""
    query = select(model).where(model.id == object_id, visible_to(caller, model))
    if lock:
        query = query.with_for_update()
    found: Model | None = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise Problem(404, f"No {noun(model.__tablename__)} with that id.")
    return found
