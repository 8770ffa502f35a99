"""Webhook endpoint and delivery bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, Field, field_validator

from services.api.schemas.common import Page, Strict
from shared.domain.events import WEBHOOK_TOPICS

WebhookTopic = Annotated[str, Field(json_schema_extra={"enum": sorted(WEBHOOK_TOPICS)})]
EventList = Annotated[list[WebhookTopic], Field(min_length=1, max_length=len(WEBHOOK_TOPICS))]
WebhookUrl = Annotated[AnyHttpUrl, Field(max_length=2000)]


def known_events(events: list[str] | None) -> list[str] | None:
    """The event types, deduplicated and sorted; unknown ones are refused."""
    if events is None:
        return None
    unknown = sorted(set(events) - WEBHOOK_TOPICS)
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    return sorted(set(events))


class WebhookEndpointCreate(Strict):
    url: WebhookUrl
    events: EventList

    _events = field_validator("events")(known_events)


class WebhookEndpointUpdate(Strict):
    url: WebhookUrl | None = None
    events: EventList | None = None
    enabled: bool | None = None

    _events = field_validator("events")(known_events)


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    # Until then, webhooks are signed with the previous secret too (after a rotation).
    previous_secret_expires_at: datetime | None = None
    # Shown once: when the endpoint is created and when its secret is rotated.
    secret: str | None = None


class WebhookEndpointPage(Page):
    items: list[WebhookEndpointOut]


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    endpoint_id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class DeliveryAttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[DeliveryAttemptOut]


class DeliveryPage(Page):
    items: list[DeliveryOut]
