"""Webhook deliveries: the organization's own, by status, with every attempt; replay.

Replay sends a pending, failed or dead delivery again now, with the same webhook-id and a fresh
retry schedule (the attempt history stays). A delivered one answers 409: receivers dedupe by
webhook-id, so sending it again would either do nothing or, for one that does not dedupe, do it
twice. One with an attempt in flight answers 409 too, as does one whose endpoint is disabled.
"""

from __future__ import annotations

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, BackgroundTasks, Query
from sqlalchemy import and_, or_, select

from services.api.deps import AnyCaller, Db
from services.api.errors import Problem
from services.api.pagination import decode_cursor, encode_cursor
from services.api.schemas.webhook import (
    DeliveryAttemptOut,
    DeliveryDetail,
    DeliveryOut,
    DeliveryPage,
)
from services.api.scope import get_visible, visible_to
from services.notifier.status import DeliveryStatus
from shared.models import Delivery, DeliveryAttempt, WebhookEndpoint, utcnow
from shared.queue import TaskName, celery_app

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/deliveries", tags=["webhooks"])


def delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=f"msg_{delivery.id}",
        endpoint_id=delivery.endpoint_id,
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        next_attempt_at=delivery.next_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


@router.get("", response_model=DeliveryPage)
async def list_deliveries(
    session: Db,
    caller: AnyCaller,
    status: DeliveryStatus | None = None,
    endpoint_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    """The organization's deliveries, oldest first, optionally by status or endpoint."""
    query = select(Delivery).where(visible_to(caller, Delivery))
    if status is not None:
        query = query.where(Delivery.status == status)
    if endpoint_id is not None:
        query = query.where(Delivery.endpoint_id == endpoint_id)
    if cursor:
        created_at, after_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Delivery.created_at > created_at,
                and_(Delivery.created_at == created_at, Delivery.id > after_id),
            )
        )
    rows = list(
        await session.scalars(query.order_by(Delivery.created_at, Delivery.id).limit(limit + 1))
    )
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return DeliveryPage(items=[delivery_out(d) for d in items], next_cursor=next_cursor)


@router.get("/{delivery_id}", response_model=DeliveryDetail)
async def get_delivery(delivery_id: str, session: Db, caller: AnyCaller) -> DeliveryDetail:
    """One delivery with every attempt: when, the receiver's status, how long, what failed."""
    delivery = await get_visible(session, caller, Delivery, delivery_id)
    attempts = await session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(DeliveryAttempt.attempted_at, DeliveryAttempt.id)
    )
    return DeliveryDetail(
        **delivery_out(delivery).model_dump(),
        attempt_log=[DeliveryAttemptOut.model_validate(a, from_attributes=True) for a in attempts],
    )


def _send_now(delivery_id: str) -> None:
    try:
        celery_app.send_task(TaskName.deliver, args=[[delivery_id]])
    except Exception:  # it is due now, so the next sweep sends it
        log.warning("could not queue a replay; the sweep will send it", exc_info=True)


@router.post("/{delivery_id}/replay", status_code=202, response_model=DeliveryOut)
async def replay_delivery(
    delivery_id: str, background: BackgroundTasks, session: Db, caller: AnyCaller
) -> DeliveryOut:
    """Send the delivery again now, with the same webhook-id and a fresh retry schedule."""
    delivery = await get_visible(session, caller, Delivery, delivery_id, lock=True)
    now = utcnow()
    if delivery.status == DeliveryStatus.delivered:
        raise Problem(409, "The delivery was delivered; receivers dedupe by webhook-id.")
    in_flight = delivery.next_attempt_at is not None and delivery.next_attempt_at > now
    if delivery.status == DeliveryStatus.sending and in_flight:
        raise Problem(409, "An attempt of this delivery is in flight; try again shortly.")
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise Problem(409, "The endpoint is disabled; enable it (PATCH enabled=true) first.")
    delivery.status, delivery.attempts, delivery.next_attempt_at = DeliveryStatus.pending, 0, now
    shown = delivery_out(delivery)
    await session.commit()
    background.add_task(anyio.to_thread.run_sync, _send_now, delivery.id)
    return shown
