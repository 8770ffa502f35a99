"""Publishing after commit: each consumer gets one task per batch of the events sent
together (kombu's in-memory transport stands in for the broker's queues)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared import outbox
from shared.config import Settings
from shared.domain.events import Consumer
from shared.outbox import BATCH, EventRef, send
from shared.queue import Queue, TaskName, make_celery
from support import queued


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
    # (an event both act on goes to the matcher, which forwards it: test_forwarding.py)
    notifications = queued(app, Queue.notifications)
    everything = [e.id for e in offers]
    assert notifications == [
        (TaskName.notify_event, everything[:BATCH]),
        (TaskName.notify_event, everything[BATCH:]),
    ]
    # forwarded events go to the notifier ahead of the new ones, in the same task
    assert send(offers[:1], forward=[received]) == [offers[0].id]
    assert queued(app, Queue.matching) == []
    assert queued(app, Queue.notifications) == [
        (TaskName.notify_event, [received.id, offers[0].id])
    ]
    # the relay re-sends to one consumer only, marked as sent before (so their starts count)
    assert send([received], only=Consumer.notifier, resent=True) == [received.id]
    assert queued(app, Queue.matching) == []
    assert queued(app, Queue.notifications, resent=True) == [(TaskName.notify_event, [received.id])]
