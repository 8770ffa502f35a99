"""What operations watch: queues (through kombu, on Redis and the embedded broker alike),
workers, the outbox, deliveries, matching rounds, support waiting for capacity."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import anyio
import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.domain.vocabulary import AssignmentStatus
from shared.models import (
    Delivery,
    MatchRound,
    Offer,
    OutboxEvent,
    Referral,
    SupportAssignment,
    TaskRun,
    WorkerHeartbeat,
    utcnow,
)
from shared.queue import Queue, celery_app

WORKER_STALE_AFTER = timedelta(seconds=35)
ROUNDS_WINDOW = timedelta(minutes=10)
DEAD_TASKS_SHOWN = 20


def _oldest_age(channel: Any, queue: str) -> float | None:
    """Age of the oldest waiting message, where the broker lets us read it without taking it
    (Redis: the list's tail); None on brokers that cannot tell."""
    client = getattr(channel, "client", None)
    if client is None or not hasattr(client, "lindex"):
        return None
    raw = client.lindex(queue, -1)
    if raw is None:
        return None
    sent_at = orjson.loads(raw).get("headers", {}).get("sent_at")
    return round(max(time.time() - float(sent_at), 0.0), 3) if sent_at else None


def broker_queues() -> list[dict[str, Any]]:
    """Depth of each queue (messages waiting, not yet taken by a worker)."""
    found = []
    with celery_app.connection_for_read() as connection:
        channel: Any = connection.default_channel
        for queue in Queue:
            declared = channel.queue_declare(queue=queue.value, passive=False, durable=True)
            found.append(
                {
                    "name": queue.value,
                    "depth": int(declared.message_count),
                    "oldest_age_seconds": _oldest_age(channel, queue.value),
                }
            )
    return found


async def report(session: AsyncSession) -> dict[str, Any]:
    """The numbers of GET /v1/ops/queues (also behind /metrics and the /ops page)."""
    now = utcnow()
    try:
        with anyio.fail_after(5):
            queues: list[dict[str, Any]] | None = await anyio.to_thread.run_sync(
                broker_queues, abandon_on_cancel=True
            )
        broker_error = None
    except Exception as error:  # the page must still show the database side
        queues, broker_error = None, type(error).__name__
    workers = [
        {
            "hostname": w.hostname,
            "queues": w.queues,
            "pid": w.pid,
            "last_seen_seconds_ago": round((now - w.last_seen_at).total_seconds(), 1),
        }
        for w in await session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.last_seen_at > now - WORKER_STALE_AFTER)
            .order_by(WorkerHeartbeat.hostname)
        )
    ]
    pending, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(
                OutboxEvent.processed_at.is_(None)
            )
        )
    ).one()
    deliveries = {
        status: count
        for status, count in (
            await session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        )
    }
    rounds = [
        {
            "region": r.region,
            "started_at": r.started_at.isoformat(),
            "duration_seconds": round(r.duration_seconds, 4),
            "units": r.units_considered,
            "people": r.people_considered,
            "offers": r.offers_made,
        }
        for r in await session.scalars(
            select(MatchRound)
            .where(MatchRound.started_at > now - ROUNDS_WINDOW)
            .order_by(MatchRound.started_at.desc())
            .limit(50)
        )
    ]
    waiting_support = await session.scalar(
        select(func.count())
        .select_from(SupportAssignment)
        .where(SupportAssignment.status == AssignmentStatus.pending_capacity)
    )
    dead_tasks = [
        {
            "task": run.task_name,
            "arguments": run.arguments,  # ids only
            "starts": run.starts,
            "cause": run.cause,
            "dead_at": run.dead_at.isoformat() if run.dead_at else None,
        }
        for run in await session.scalars(
            select(TaskRun)
            .where(TaskRun.dead_at.is_not(None))
            .order_by(TaskRun.dead_at.desc())
            .limit(DEAD_TASKS_SHOWN)
        )
    ]
    tasks_dead = await session.scalar(
        select(func.count()).select_from(TaskRun).where(TaskRun.dead_at.is_not(None))
    )
    return {
        "queues": queues,
        "broker_error": broker_error,
        "workers": workers,
        "outbox_pending": pending,
        "outbox_oldest_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        "deliveries_pending": deliveries.get("pending", 0),
        "deliveries_failing": deliveries.get("failed", 0),
        "deliveries_dead": deliveries.get("dead", 0),
        "deliveries_delivered": deliveries.get("delivered", 0),
        "support_pending_capacity": waiting_support or 0,
        "match_rounds": rounds,
        "tasks_dead": tasks_dead or 0,
        "dead_tasks": dead_tasks,
    }


async def referral_to_offer_seconds(session: AsyncSession, window: timedelta) -> list[float]:
    """Seconds from referral to first offer, for first offers made in the window."""
    since = utcnow() - window
    first = (
        select(Offer.referral_id, func.min(Offer.created_at).label("first_at"))
        .group_by(Offer.referral_id)
        .subquery()
    )
    rows = await session.execute(
        select(Referral.created_at, first.c.first_at)
        .join(first, first.c.referral_id == Referral.id)
        .where(first.c.first_at > since)
    )
    return [(offered - referred).total_seconds() for referred, offered in rows]
