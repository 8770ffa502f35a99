"""Webhook endpoints: where an organization receives its events, and the secret they are signed
with (rotations keep the previous secret signing for 24 hours)."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import delete, select

from services.api.deps import AnyCaller, Db
from services.api.errors import Problem
from services.api.pagination import page, split_page
from services.api.schemas.webhook import (
    WebhookEndpointCreate,
    WebhookEndpointOut,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
)
from services.api.scope import get_visible, visible_to
from shared.models import Delivery, DeliveryAttempt, WebhookEndpoint, new_id, utcnow

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def endpoint_out(endpoint: WebhookEndpoint, *, secret: str | None = None) -> WebhookEndpointOut:
    shown = WebhookEndpointOut.model_validate(endpoint, from_attributes=True)
    shown.secret = secret
    now = utcnow()
    expires_at = endpoint.previous_secret_expires_at
    if expires_at is None or expires_at <= now or not endpoint.previous_secret:
        shown.previous_secret_expires_at = None
    return shown


@router.post("", status_code=201, response_model=WebhookEndpointOut)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate, response: Response, session: Db, caller: AnyCaller
) -> WebhookEndpointOut:
    """Subscribe a URL to event types; the signing secret is shown this once."""
    endpoint = WebhookEndpoint(
        id=new_id(),
        organization_id=caller.organization_id,
        url=str(body.url),
        events=body.events,
        secret=new_secret(),
        enabled=True,
        updated_at=utcnow(),
    )
    session.add(endpoint)
    await session.flush()
    shown = endpoint_out(endpoint, secret=endpoint.secret)
    await session.commit()
    response.headers["Location"] = f"/v1/webhook-endpoints/{endpoint.id}"
    return shown


@router.get("", response_model=WebhookEndpointPage)
async def list_webhook_endpoints(
    session: Db,
    caller: AnyCaller,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WebhookEndpointPage:
    """The organization's endpoints (secrets are never shown again)."""
    query = select(WebhookEndpoint).where(visible_to(caller, WebhookEndpoint))
    paged = page(query, WebhookEndpoint, changed_since=None, cursor=cursor, limit=limit)
    items, next_cursor = split_page(list(await session.scalars(paged)), limit)
    return WebhookEndpointPage(items=[endpoint_out(e) for e in items], next_cursor=next_cursor)


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut)
async def get_webhook_endpoint(
    endpoint_id: str, session: Db, caller: AnyCaller
) -> WebhookEndpointOut:
    """One endpoint."""
    return endpoint_out(await get_visible(session, caller, WebhookEndpoint, endpoint_id))


@router.patch("/{endpoint_id}", response_model=WebhookEndpointOut)
async def update_webhook_endpoint(
    endpoint_id: str, body: WebhookEndpointUpdate, session: Db, caller: AnyCaller
) -> WebhookEndpointOut:
    """Change the URL or event types, or disable and enable the endpoint (enabling one that a
    410 disabled starts deliveries again; replay its dead deliveries to send them)."""
    endpoint = await get_visible(session, caller, WebhookEndpoint, endpoint_id, lock=True)
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise Problem(422, "url, events and enabled cannot be null.")
    if body.url is not None:
        endpoint.url = str(body.url)
    if body.events is not None:
        endpoint.events = body.events
    if body.enabled is not None and body.enabled != endpoint.enabled:
        endpoint.enabled = body.enabled
        endpoint.disabled_reason = None if body.enabled else "disabled by its organization"
    endpoint.updated_at = utcnow()
    shown = endpoint_out(endpoint)
    await session.commit()
    return shown


@router.post("/{endpoint_id}/rotate-secret", response_model=WebhookEndpointOut)
async def rotate_secret(endpoint_id: str, session: Db, caller: AnyCaller) -> WebhookEndpointOut:
    """A new secret, shown this once; for 24 hours webhooks carry a signature with each secret,
    so receivers can switch over without missing one. Rotating again drops the oldest secret."""
    endpoint = await get_visible(session, caller, WebhookEndpoint, endpoint_id, lock=True)
    now = utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    shown = endpoint_out(endpoint, secret=endpoint.secret)
    await session.commit()
    return shown


@router.delete("/{endpoint_id}", status_code=204)
async def delete_webhook_endpoint(endpoint_id: str, session: Db, caller: AnyCaller) -> Response:
    """Remove the endpoint with its deliveries and their attempts."""
    endpoint = await get_visible(session, caller, WebhookEndpoint, endpoint_id)
    own_deliveries = select(Delivery.id).where(Delivery.endpoint_id == endpoint.id)
    # Deliveries first, then the endpoint: the order in which the notifier locks them.
    await session.execute(own_deliveries.with_for_update())
    await session.execute(
        select(WebhookEndpoint.id).where(WebhookEndpoint.id == endpoint.id).with_for_update()
    )
    await session.execute(
        delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(own_deliveries))
    )
    await session.execute(delete(Delivery).where(Delivery.endpoint_id == endpoint.id))
    await session.delete(endpoint)
    await session.commit()
    return Response(status_code=204)
