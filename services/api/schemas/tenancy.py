"""Tenancy, absence and support assignment bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from services.api.schemas.common import Day, Reason, Strict
from shared.domain.tenancy import AbsenceKind, EndReason


class MoveInBody(Strict):
    date: Day


class AbsenceCreate(Strict):
    kind: AbsenceKind
    from_: Day = Field(alias="from")
    note: Reason | None = None


class AbsenceEnd(Strict):
    to: Day | None = None


class AbsenceOut(BaseModel):
    id: str
    kind: str
    from_: date = Field(serialization_alias="from")
    to: date | None
    created_at: datetime


class TenancyEnd(Strict):
    reason: EndReason
    date: Day


class TenancyOut(BaseModel):
    id: str
    offer_id: str
    referral_id: str
    unit_id: str
    region: str
    status: str
    started_on: date
    ended_on: date | None
    end_reason: str | None
    absences: list[AbsenceOut]
    support: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class TenancyPage(BaseModel):
    items: list[TenancyOut]
    next_cursor: str | None
    cursor: str | None


class StepDownBody(Strict):
    reason: Reason


class AssignmentOut(BaseModel):
    id: str
    referral_id: str
    team_id: str | None
    region: str
    kind: str
    status: str
    step_down_reason: str | None
    person: dict[str, Any]
    household: dict[str, Any]
    needs: dict[str, Any]
    unit: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


class AssignmentPage(BaseModel):
    items: list[AssignmentOut]
    next_cursor: str | None
    cursor: str | None
