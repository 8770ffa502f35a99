"""The outbox relay and the sweepers run on several workers at once (PostgreSQL): each claims its
rows with FOR UPDATE SKIP LOCKED, so two running together never take the same row."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from services.matcher import relay
from services.matcher.relay import relay_unfinished, relay_unpublished
from shared.db import make_engine
from shared.models import OutboxEvent, new_id, utcnow

EVENTS = 40


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What the relays hand to the broker, per event and consumer (the claims are under test,
    not the broker)."""
    sent: list[tuple[str, Any]] = []

    def send(refs: list[Any], only: Any = None, resent: bool = False) -> list[str]:
        # a re-send to a consumer is marked, so its task counts its start (shared/redelivery.py)
        assert resent is (only is not None)
        sent.extend((ref.id, only) for ref in refs)
        return [ref.id for ref in refs]

    monkeypatch.setattr(relay, "send", send)
    return sent


def old_events(postgres_url: str, *, published: bool) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    with Session(make_engine(postgres_url)) as session:
        session.add_all(
            OutboxEvent(
                id=new_id(),
                topic="referral.received",
                region="north",
                payload={},
                created_at=long_ago,
                published_at=long_ago if published else None,
            )
            for _ in range(EVENTS)
        )
        session.commit()


@pytest.mark.parametrize("unfinished", [False, True], ids=["unpublished", "unfinished"])
def test_two_relays_at_once_never_send_the_same_event(
    postgres_url: str, published: list[tuple[str, Any]], unfinished: bool
) -> None:
    old_events(postgres_url, published=unfinished)
    engine = make_engine(postgres_url)

    def run(session: Session) -> int:
        if unfinished:
            return relay_unfinished(session, now=utcnow(), older_than=timedelta(minutes=3))
        return relay_unpublished(session, now=utcnow(), older_than=timedelta(seconds=5))

    with Session(engine) as first, Session(engine) as second:
        first_count = run(first)  # its transaction is open: it holds the rows it claimed
        second_count = run(second)
        first.commit()
        second.commit()
    with Session(engine) as third:
        third_count = run(third)  # after the first committed, nothing is left to send
        third.commit()
    assert first_count > 0 and second_count == 0 and third_count == 0
    assert len(published) == len(set(published)) == first_count  # no event sent twice
    assert len({event_id for event_id, _ in published}) == EVENTS
    engine.dispose()
