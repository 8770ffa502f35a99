"""Unit bodies: eligibility from the closed list of lawful programme targets only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from services.api.schemas.common import Area, Region, Strict
from shared.domain.vocabulary import ProgrammeTag

Reference = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
SettableStatus = Literal["available", "offline"]
Eligibility = Annotated[
    list[ProgrammeTag],
    Field(
        max_length=len(ProgrammeTag),
        description="Lawful programme targets only (Housing First: no readiness conditions).",
    ),
]


class UnitCreate(Strict):
    region: Region
    area: Area
    max_occupants: int = Field(ge=1, le=20)
    bedrooms: int = Field(ge=0, le=20)
    wheelchair_accessible: bool = False
    step_free: bool = False
    pets_allowed: bool = False
    eligibility: Eligibility = Field(default_factory=list)
    status: SettableStatus = "available"
    reference: Reference | None = None


class UnitUpdate(Strict):
    area: Area | None = None
    max_occupants: int | None = Field(default=None, ge=1, le=20)
    bedrooms: int | None = Field(default=None, ge=0, le=20)
    wheelchair_accessible: bool | None = None
    step_free: bool | None = None
    pets_allowed: bool | None = None
    eligibility: Eligibility | None = None
    status: SettableStatus | None = None
    reference: Reference | None = None


class UnitOut(BaseModel):
    id: str
    region: str
    area: str
    max_occupants: int
    bedrooms: int
    wheelchair_accessible: bool
    step_free: bool
    pets_allowed: bool
    eligibility: list[str]
    status: str
    reference: str | None
    available_since: datetime | None
    created_at: datetime
    updated_at: datetime
