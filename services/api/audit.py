"""Every read and change of personal data leaves an audit event in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import Caller
from services.api.deps import Db, require
from shared.domain.vocabulary import Role
from shared.models import AuditEvent, new_id, utcnow

router = APIRouter(prefix="/v1/audit", tags=["audit"])


def record(
    session: AsyncSession, caller: Caller, action: str, object_type: str, object_ids: Iterable[str]
) -> None:
    """Add one audit event per object (committed with the request's transaction)."""
    entries = audit_rows(caller, action, object_type, object_ids)
    session.add_all(AuditEvent(**entry) for entry in entries)


def audit_rows(
    caller: Caller, action: str, object_type: str, object_ids: Iterable[str]
) -> list[dict[str, Any]]:
    """One audit event per object, as column values (for a Core insert)."""
    now = utcnow()
    return [
        {
            "id": new_id(),
            "key_id": caller.key_id,
            "organization_id": caller.organization_id,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "at": now,
        }
        for object_id in object_ids
    ]


class AuditOut(BaseModel):
    id: str
    key_id: str | None
    organization_id: str | None
    action: str
    object_type: str
    object_id: str
    at: datetime


AdminCaller = Annotated[Caller, Depends(require(Role.admin))]


@router.get("", response_model=list[AuditOut])
async def audit_trail(
    session: Db,
    caller: AdminCaller,
    object: Annotated[str, Query(min_length=1, max_length=64, description="An object id.")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    """Who read or changed this object's personal data, newest first (admins)."""
    rows = await session.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_id == object)
        .order_by(AuditEvent.at.desc(), AuditEvent.id)
        .limit(limit)
    )
    return [AuditOut.model_validate(row, from_attributes=True) for row in rows]
