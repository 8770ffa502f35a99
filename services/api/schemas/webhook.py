"""Webhook endpoint and delivery bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    UrlConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema
from pydantic_core import PydanticCustomError

from services.api.schemas.common import Page, Strict
from shared.domain.events import WEBHOOK_TOPICS

WebhookTopic = Annotated[str, Field(json_schema_extra={"enum": sorted(WEBHOOK_TOPICS)})]
EventList = Annotated[list[WebhookTopic], Field(min_length=1, max_length=len(WEBHOOK_TOPICS))]

# The longest URL the document allows, and the webhook_endpoints.url column.
URL_LENGTH = 2000


def _url_length(value: object) -> object:
    """The length of the URL as sent: parsing adds to it (percent-encoding, punycode)."""
    if isinstance(value, str) and len(value) > URL_LENGTH:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters",
            {"max_length": URL_LENGTH},
        )
    return value


def _fits_column(url: AnyHttpUrl) -> AnyHttpUrl:
    """The parsed URL is what is stored and sent to; chiefly characters a URI may not hold (a
    space, non-ASCII) make it longer than the URL as sent, and so past the column."""
    if len(str(url)) > URL_LENGTH:
        raise PydanticCustomError(
            "url_too_long",
            "URL should have at most {max_length} characters once normalised",
            {"max_length": URL_LENGTH},
        )
    return url


# An http(s) URL of at most URL_LENGTH characters as sent; an empty path stays empty (no "/"
# is added), so a URI within the limit stays within it once parsed.
WebhookUrl = Annotated[
    AnyHttpUrl,
    UrlConstraints(preserve_empty_path=True),
    BeforeValidator(_url_length),
    AfterValidator(_fits_column),
    WithJsonSchema({"type": "string", "format": "uri", "minLength": 1, "maxLength": URL_LENGTH}),
]


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
    """Only the fields sent change; none of them may be null (refused with 422)."""

    url: WebhookUrl | SkipJsonSchema[None] = None
    events: EventList | SkipJsonSchema[None] = None
    enabled: StrictBool | SkipJsonSchema[None] = None

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
