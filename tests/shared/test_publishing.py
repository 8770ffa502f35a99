"""Publishing after commit: the matcher gets a task per event, the notifier one per batch of
the events sent together (kombu's in-memory transport stands in for the broker's queues)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared import outbox
from shared.config import Settings
from shared.domain.events import Consumer
from shared.outbox import BATCH, EventRef, send
from shared.queue import RESENT, Queue, TaskName, make_celery


def queued(app: Any, queue: Queue, *, resent: bool = False) -> list[tuple[str, Any]]:
    """The tasks waiting in a queue (each marked `resent` or not, as asked)."""
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue.value)
        found = []
        while simple.qsize():
            message = simple.get(timeout=1)
            assert bool(message.headers.get(RESENT)) is resent
            found.append((message.headers["task"], message.payload[0][0]))
            message.ack()
        return found


def test_each_consumer_gets_the_events_sent_together_as_one_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_celery(Settings(broker_url="memory://", data_dir=tmp_path))
    monkeypatch.setattr(outbox, "celery_app", app)
    offers = [EventRef(f"evt_offer_{n:03}", "offer.created") for n in range(BATCH + 2)]
    received = EventRef("evt_received", "referral.received", "req_1")
    internal = EventRef("evt_changed", "unit.changed")
    assert send([received, *offers, internal]) == [e.id for e in [received, *offers, internal]]
    matching = queued(app, Queue.matching)
    assert matching == [(TaskName.match_event, ["evt_received", "evt_changed"])]
    notifications = queued(app, Queue.notifications)
    everything = [received.id, *(e.id for e in offers)]
    assert notifications == [
        (TaskName.notify_event, everything[:BATCH]),
        (TaskName.notify_event, everything[BATCH:]),
    ]
    # the relay re-sends to one consumer only, marked as sent before (so their starts count)
    assert send([received], only=Consumer.notifier, resent=True) == [received.id]
    assert queued(app, Queue.matching) == []
    assert queued(app, Queue.notifications, resent=True) == [(TaskName.notify_event, [received.id])]
