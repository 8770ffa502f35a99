"""The API publishes a request's events after its response and marks them published a moment
later, together with other requests' events, or as it stops (services/api/publishing.py);
kombu's in-memory transport stands in for the broker's queues."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.api.app import create_app
from services.api.publishing import MARK_AFTER_SECONDS
from shared import outbox
from shared.config import Settings
from shared.domain.vocabulary import Role
from shared.models import OutboxEvent
from shared.queue import Queue, TaskName, make_celery
from support import Stack, queued


def unmarked(stack: Stack) -> int:
    with stack.session() as session:
        count = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.published_at.is_(None))
        )
    return int(count or 0)


def in_memory_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    app = make_celery(Settings(broker_url="memory://", data_dir=tmp_path))
    monkeypatch.setattr(outbox, "celery_app", app)
    return app


def test_events_sent_are_marked_published_a_moment_later(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = in_memory_broker(tmp_path, monkeypatch)
    outreach = stack.key(Role.outreach)
    # when three referrals are posted
    for _ in range(3):
        stack.post_referral(outreach)
    # then each one's event was sent (a TestClient request returns after its background work)
    sent = [ids for _, ids in queued(broker, Queue.matching)]
    assert len(sent) == 3 and all(len(ids) == 1 for ids in sent)
    # and, a moment later, every event is marked published
    deadline = time.monotonic() + 50 * MARK_AFTER_SECONDS
    while unmarked(stack) and time.monotonic() < deadline:
        time.sleep(MARK_AFTER_SECONDS / 2)
    assert unmarked(stack) == 0


def test_events_sent_before_the_api_stops_are_marked(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = in_memory_broker(tmp_path, monkeypatch)
    settings = Settings(database_url=database_url, data_dir=tmp_path)
    with TestClient(create_app(settings)) as client:
        stack = Stack(client=client, database_url=database_url)
        stack.post_referral(stack.key(Role.outreach))
    # the API stopped right after answering: what it sent is marked all the same
    assert queued(broker, Queue.matching)[0][0] == TaskName.match_event
    assert unmarked(stack) == 0
