"""Webhook endpoints: where an organization receives its events."""

from __future__ import annotations

import base64
import secrets

from fastapi import APIRouter

from services.api.deps import AnyCaller, Db
from services.api.schemas.support import WebhookEndpointCreate, WebhookEndpointOut
from shared.models import WebhookEndpoint, new_id

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@router.post("", status_code=201, response_model=WebhookEndpointOut)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate, session: Db, caller: AnyCaller
) -> WebhookEndpointOut:
    """Subscribe a URL to event types; the signing secret is shown this once."""
    endpoint = WebhookEndpoint(
        id=new_id(),
        organization_id=caller.organization_id,
        url=str(body.url),
        events=body.events,
        secret=new_secret(),
    )
    session.add(endpoint)
    await session.commit()
    shown = WebhookEndpointOut.model_validate(endpoint, from_attributes=True)
    shown.secret = endpoint.secret
    return shown
