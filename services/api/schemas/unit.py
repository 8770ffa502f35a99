"""Unit bodies: eligibility from the closed list of lawful programme targets only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, StrictBool, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from services.api.schemas.common import Area, Region, Strict, json_integer
from shared.domain.vocabulary import ProgrammeTag

Reference = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
# Bounds before the validator, so the documented schema keeps them (also when optional).
Occupants = Annotated[int, Field(ge=1, le=20), BeforeValidator(json_integer)]
Bedrooms = Annotated[int, Field(ge=0, le=20), BeforeValidator(json_integer)]
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
    max_occupants: Occupants
    bedrooms: Bedrooms
    wheelchair_accessible: StrictBool = False
    step_free: StrictBool = False
    pets_allowed: StrictBool = False
    eligibility: Eligibility = Field(default_factory=list)
    status: SettableStatus = "available"
    reference: Reference | None = None


class UnitUpdate(Strict):
    """Only the fields given change; null (422) is no value for any but `status` (no change)."""

    area: Area | SkipJsonSchema[None] = None
    max_occupants: Occupants | SkipJsonSchema[None] = None
    bedrooms: Bedrooms | SkipJsonSchema[None] = None
    wheelchair_accessible: StrictBool | SkipJsonSchema[None] = None
    step_free: StrictBool | SkipJsonSchema[None] = None
    pets_allowed: StrictBool | SkipJsonSchema[None] = None
    eligibility: Eligibility | SkipJsonSchema[None] = None
    status: SettableStatus | None = None
    reference: Reference | SkipJsonSchema[None] = None


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


class UnitPage(BaseModel):
    items: list[UnitOut]
    next_cursor: str | None
    cursor: str | None
