"""Support team bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from services.api.schemas.common import Area, Region, Strict, Whole
from shared.domain.vocabulary import SupportKind

TeamName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class SupportTeamCreate(Strict):
    region: Region
    kind: SupportKind
    areas: list[Area] = Field(default_factory=list, max_length=50)
    capacity: Whole = Field(ge=1, le=10_000)
    name: TeamName | None = None


class SupportTeamOut(BaseModel):
    id: str
    region: str
    kind: str
    areas: list[str]
    capacity: int
    name: str | None
    created_at: datetime
