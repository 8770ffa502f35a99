"""Commit at the request boundary, then publish the outbox events after the response."""

from __future__ import annotations

import asyncio
import logging

import anyio
from fastapi import BackgroundTasks, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import utcnow
from shared.outbox import MARK_PUBLISHED, EventRef, send, take_pending

log = logging.getLogger(__name__)


# Events handed to the broker are marked published together, this long after the first of
# them: one UPDATE for the events of many requests, however few arrive at once. The relay
# re-publishes what is unmarked after `relay_after_seconds` (5 s), so a process lost before
# its mark only sends those events twice, which every consumer takes as done.
MARK_AFTER_SECONDS = 0.1


async def publish_events(
    sessions: async_sessionmaker[AsyncSession], events: list[EventRef]
) -> list[str]:
    """Hand event ids to the broker; the ids it took (the relay covers any failure)."""
    sent: list[str] = await anyio.to_thread.run_sync(send, events)
    return sent


async def mark_published(sessions: async_sessionmaker[AsyncSession], event_ids: list[str]) -> None:
    """Record that the events reached the broker (or leave them to the relay)."""
    try:
        async with sessions() as session:
            await session.execute(MARK_PUBLISHED, {"event_ids": event_ids, "now": utcnow()})
            await session.commit()
    except Exception:
        log.warning("could not mark events published; the relay will re-send them")


class Publisher:
    """One per API process: concurrent requests' events are published together (group commit).

    Each request waits, after its response is sent, until a round that includes its events has
    finished; one round at a time, and a round takes every event waiting when it starts. Under
    load that is one thread hop and one broker producer for many requests instead of one each;
    when idle, a round is a single request's events, published at once. The events sent are
    marked published together, MARK_AFTER_SECONDS after the first of them.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._waiting: list[EventRef] = []
        self._lock = asyncio.Lock()
        self._next_round = 0  # the round that will take the events waiting now
        self._finished = 0  # rounds before this one have finished
        self._sent: list[str] = []  # sent, not yet marked published
        self._marking: asyncio.Task[None] | None = None

    async def publish(self, events: list[EventRef]) -> None:
        self._waiting += events
        round_taking_them = self._next_round
        async with self._lock:
            if self._finished > round_taking_them:
                return  # a round that finished while we queued took them
            batch, self._waiting = self._waiting, []
            self._next_round += 1
            try:
                self._mark_soon(await publish_events(self.sessions, batch))
            finally:
                self._finished = self._next_round

    def _mark_soon(self, event_ids: list[str]) -> None:
        self._sent += event_ids
        if self._sent and (self._marking is None or self._marking.done()):
            self._marking = asyncio.create_task(self._mark_after_a_moment())

    async def _mark_after_a_moment(self) -> None:
        await asyncio.sleep(MARK_AFTER_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Mark every event sent so far published."""
        while self._sent:
            event_ids, self._sent = self._sent, []
            await mark_published(self.sessions, event_ids)

    async def settled(self) -> None:
        """Wait until every event sent so far is marked (as the process stops). The marking
        under way is waited for, not cancelled: cut off inside its transaction, it could
        leave an SQLite write lock held."""
        while self._marking is not None and not self._marking.done():
            await asyncio.shield(self._marking)
        await self.flush()


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
