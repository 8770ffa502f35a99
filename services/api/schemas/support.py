"""Support team and webhook endpoint bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, Field, StringConstraints, field_validator

from services.api.schemas.common import Area, Region, Strict
from shared.domain.events import WEBHOOK_TOPICS
from shared.domain.vocabulary import SupportKind

TeamName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class SupportTeamCreate(Strict):
    region: Region
    kind: SupportKind
    areas: list[Area] = Field(default_factory=list, max_length=50)
    capacity: int = Field(ge=1, le=10_000)
    name: TeamName | None = None


class SupportTeamOut(BaseModel):
    id: str
    region: str
    kind: str
    areas: list[str]
    capacity: int
    name: str | None
    created_at: datetime


WebhookTopic = Annotated[str, Field(json_schema_extra={"enum": sorted(WEBHOOK_TOPICS)})]


class WebhookEndpointCreate(Strict):
    url: AnyHttpUrl = Field(max_length=2000)
    events: list[WebhookTopic] = Field(min_length=1, max_length=len(WEBHOOK_TOPICS))

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - WEBHOOK_TOPICS)
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)}")
        return sorted(set(events))


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    created_at: datetime
    secret: str | None = None
