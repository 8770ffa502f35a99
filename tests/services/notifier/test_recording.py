"""A batch of claims or answers where one row cannot be handled: the others go on."""

from __future__ import annotations

from typing import Any

import pytest
from notifier_support import attempts, delivery, make_hook, take
from receivers import receiver
from sqlalchemy import select

from services.notifier import delivery as webhook
from services.notifier import ledger
from services.notifier.outcomes import record
from shared.models import Delivery, DeliveryAttempt, utcnow
from support import Stack


def test_answers_for_a_delivery_deleted_meanwhile_leave_the_rest_recorded(stack: Stack) -> None:
    with receiver() as kept_hooks, receiver() as gone_hooks:
        kept, gone = make_hook(stack, kept_hooks.url), make_hook(stack, gone_hooks.url)
        kept_id, gone_id = kept.delivery(), gone.delivery()
        now = utcnow()
        claims = take(stack, [kept_id, gone_id], now=now, limit=2)
        assert len(claims) == 2
        # while the two are being sent, the provider deletes one endpoint (and its deliveries)
        path = f"/v1/webhook-endpoints/{gone.id}"
        assert stack.client.delete(path, headers=gone.headers).status_code == 204
        answered = webhook.Outcome(True, 200, None, 0.01)
        with stack.session() as session:
            record(session, [(c, answered) for c in claims], now=now)
    done = delivery(stack, kept_id)
    assert (done.status, done.delivered_at, done.last_status_code) == ("delivered", now, 200)
    assert [a.status_code for a in attempts(stack, kept_id)] == [200]
    with stack.session() as session:
        assert session.get(Delivery, gone_id) is None
        left = select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == gone_id)
        assert session.scalars(left).all() == []


def test_a_late_duplicate_2xx_adds_its_attempt_and_changes_nothing_else(stack: Stack) -> None:
    with receiver() as hooks:
        delivery_id = make_hook(stack, hooks.url).delivery()
        now = utcnow()
        [taken] = take(stack, [delivery_id], now=now, limit=1)
        with stack.session() as session:
            record(session, [(taken, webhook.Outcome(True, 200, None, 0.01))], now=now)
        first = delivery(stack, delivery_id)
        later = taken.lease_until
        with stack.session() as session:  # the same answer recorded again (a retried batch)
            record(session, [(taken, webhook.Outcome(True, 204, None, 0.02))], now=later)
    again = delivery(stack, delivery_id)
    assert (again.status, again.delivered_at, again.last_status_code) == (
        "delivered",
        first.delivered_at,
        200,
    )
    assert [a.status_code for a in attempts(stack, delivery_id)] == [200, 204]


def test_an_event_that_cannot_be_composed_fails_its_delivery_alone(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    with receiver() as hooks:
        hook = make_hook(stack, hooks.url)
        broken_id, fine_id = hook.delivery(), hook.delivery()
        with stack.session() as session:
            broken_event = session.get(Delivery, broken_id)
            assert broken_event is not None
            broken = broken_event.event_id
        compose = ledger.compose

        def compose_or_fail(rows: Any, event: Any) -> dict[str, Any]:
            if event.id == broken:  # (a fault injected into this one event's composing)
                raise ValueError("a row it names cannot be read")
            return compose(rows, event)

        monkeypatch.setattr(ledger, "compose", compose_or_fail)
        now = utcnow()
        claims = take(stack, [broken_id, fine_id], now=now, limit=2)
    assert [c.delivery_id for c in claims] == [fine_id]
    failed = delivery(stack, broken_id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error == "not sent: ValueError: a row it names cannot be read"
    assert failed.next_attempt_at is not None and failed.next_attempt_at > now
    [logged] = attempts(stack, broken_id)
    assert logged.status_code is None and logged.error == failed.last_error


def test_a_batch_of_different_answers_records_each_its_own(stack: Stack) -> None:
    with receiver() as hooks:
        hook = make_hook(stack, hooks.url)
        delivery_ids = [hook.delivery() for _ in range(3)]
        now = utcnow()
        claims = take(stack, delivery_ids, now=now, limit=3)
        answers = [
            webhook.Outcome(True, 200, None, 0.01),
            webhook.Outcome(True, 202, None, 0.01),
            webhook.Outcome(False, 500, "HTTP 500", 0.01),
        ]
        by_id = dict(zip(delivery_ids, answers, strict=True))
        with stack.session() as session:
            record(session, [(c, by_id[c.delivery_id]) for c in claims], now=now)
    first, second, third = (delivery(stack, d) for d in delivery_ids)
    assert (first.status, first.last_status_code) == ("delivered", 200)
    assert (second.status, second.last_status_code) == ("delivered", 202)
    assert (third.status, third.last_status_code, third.last_error) == ("failed", 500, "HTTP 500")
    assert third.next_attempt_at is not None and third.next_attempt_at > now
    assert [[a.status_code for a in attempts(stack, d)] for d in delivery_ids] == [
        [200],
        [202],
        [500],
    ]
