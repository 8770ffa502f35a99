"""Commit at the request boundary, then publish the outbox events after the response."""

from __future__ import annotations

import anyio
from fastapi import BackgroundTasks, Request
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import OutboxEvent, utcnow
from shared.outbox import EventRef, send, take_pending


async def publish_events(
    sessions: async_sessionmaker[AsyncSession], events: list[EventRef]
) -> None:
    """Hand event ids to the broker and mark them published; the relay covers any failure."""
    sent = await anyio.to_thread.run_sync(send, events)
    if not sent:
        return
    async with sessions() as session:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(sent)).values(published_at=utcnow())
        )
        await session.commit()


async def commit(session: AsyncSession, request: Request, background: BackgroundTasks) -> None:
    """The request's one commit: facts and their outbox events together, then publish.

    Build the response before calling this: on SQLite a read after commit would open a new
    (immediate) transaction that blocks the publisher until the request ends.
    """
    await session.commit()
    events = take_pending(session)
    if events:
        background.add_task(publish_events, request.app.state.sessions, events)
