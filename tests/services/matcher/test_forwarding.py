"""Events both consumers act on reach the notifier through the matcher: a round forwards the
triggers it recorded, ahead of the events it emitted, in one notifier task
(shared/domain/events.py FORWARDED_TOPICS); kombu's in-memory transport stands in for the
broker's queues."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.matcher import regions
from services.matcher.regions import serve_events
from services.matcher.tasks import match_event
from shared import outbox, worker
from shared.config import Settings
from shared.consumption import consumed
from shared.domain.events import Consumer
from shared.domain.vocabulary import Role
from shared.models import OutboxEvent, utcnow
from shared.outbox import take_forwarded
from shared.queue import Queue, TaskName, make_celery
from support import Stack, queued


def event_id(stack: Stack, topic: str) -> str:
    with stack.session() as session:
        found = session.scalar(select(OutboxEvent.id).where(OutboxEvent.topic == topic))
    assert found is not None
    return found


def test_a_round_forwards_its_triggers_ahead_of_its_offer_in_one_task(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_celery(Settings(broker_url="memory://", data_dir=tmp_path))
    monkeypatch.setattr(outbox, "celery_app", app)
    monkeypatch.setattr(
        worker, "get_session_factory", lambda: sessionmaker(stack.engine, expire_on_commit=False)
    )
    # given a unit and a referral, each published by the API to the matcher alone (a
    # TestClient request returns once the app's background publishing is done)
    stack.post_unit(stack.key(Role.housing_provider))
    stack.post_referral(stack.key(Role.outreach))
    available, received = event_id(stack, "unit.available"), event_id(stack, "referral.received")
    assert queued(app, Queue.matching) == [
        (TaskName.match_event, [available]),
        (TaskName.match_event, [received]),
    ]
    assert queued(app, Queue.notifications) == []
    # when the referral's task runs first (its round sees both changes)
    match_event([received])
    # then the notifier gets both, in the order they happened, and the offer, in one task
    offered = event_id(stack, "offer.created")
    assert queued(app, Queue.notifications) == [
        (TaskName.notify_event, [available, received, offered])
    ]
    assert queued(app, Queue.matching) == []
    # and the unit's task, its work done by that round, forwards nothing again
    match_event([available])
    assert queued(app, Queue.notifications) == []


def test_events_a_round_did_not_see_are_recorded_and_forwarded_too(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a referral's event the region's round does not see (past the oldest
    # UNFINISHED_AT_ONCE of a backlog; here the round sees none)
    stack.post_referral(stack.key(Role.outreach))
    received = event_id(stack, "referral.received")
    monkeypatch.setattr(regions, "unfinished_triggers", lambda session, region: [])
    # when its task takes it
    with stack.session() as session:
        serve_events(session, "north", [received], now=utcnow(), ttl_hours=72)
        forwarded = take_forwarded(session)
        session.commit()
    # then it is recorded for the matcher and forwarded to the notifier after that commit
    assert [(ref.id, ref.topic) for ref in forwarded] == [(received, "referral.received")]
    with stack.session() as session:
        assert consumed(session, [received], Consumer.matcher) == {received}
    # and a twin that finds it done forwards nothing
    with stack.session() as session:
        serve_events(session, "north", [received], now=utcnow(), ttl_hours=72)
        assert take_forwarded(session) == []
