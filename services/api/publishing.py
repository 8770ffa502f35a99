"""Commit at the request boundary, then publish the outbox events after the response."""

from __future__ import annotations

import asyncio

import anyio
from fastapi import BackgroundTasks, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import utcnow
from shared.outbox import MARK_PUBLISHED, EventRef, send, take_pending


async def publish_events(
    sessions: async_sessionmaker[AsyncSession], events: list[EventRef]
) -> None:
    """Hand event ids to the broker and mark them published; the relay covers any failure."""
    sent = await anyio.to_thread.run_sync(send, events)
    if not sent:
        return
    async with sessions() as session:
        await session.execute(MARK_PUBLISHED, {"event_ids": sent, "now": utcnow()})
        await session.commit()


class Publisher:
    """One per API process: concurrent requests' events are published together (group commit).

    Each request waits, after its response is sent, until a round that includes its events has
    finished; one round at a time, and a round takes every event waiting when it starts. Under
    load that is one thread hop, one broker producer and one UPDATE for many requests instead of
    one each; when idle, a round is a single request's events, published at once.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._waiting: list[EventRef] = []
        self._lock = asyncio.Lock()
        self._next_round = 0  # the round that will take the events waiting now
        self._finished = 0  # rounds before this one have finished

    async def publish(self, events: list[EventRef]) -> None:
        self._waiting += events
        round_taking_them = self._next_round
        async with self._lock:
            if self._finished > round_taking_them:
                return  # a round that finished while we queued took them
            batch, self._waiting = self._waiting, []
            self._next_round += 1
            try:
                await publish_events(self.sessions, batch)
            finally:
                self._finished = self._next_round


async def commit(session: AsyncSession, request: Request, background: BackgroundTasks) -> None:
    """The request's one commit: facts and their outbox events together, then publish.

    Build the response before calling this: on SQLite a read after commit would open a new
    (immediate) transaction that blocks the publisher until the request ends.
    """
    await session.commit()
    publish_after_response(request, background, take_pending(session))


def publish_after_response(
    request: Request, background: BackgroundTasks, events: list[EventRef]
) -> None:
    """Hand committed events to this process's publisher once the response has been sent."""
    if events:
        publisher: Publisher = request.app.state.publisher
        background.add_task(publisher.publish, events)
