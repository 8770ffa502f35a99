"""The whole retry schedule on an injected clock (no sleeping): ten attempts over about three
days, dead, listed as dead, replayed with the same webhook-id, delivered."""

from datetime import timedelta

from notifier_support import attempt, attempts, client, delivery, make_hook
from receivers import Reply, receiver
from standardwebhooks import Webhook

from services.notifier.delivery import JITTER, MAX_ATTEMPTS, RETRY_DELAYS
from shared.models import utcnow
from support import Stack


def test_every_retry_waits_its_turn_then_the_delivery_dies_and_replay_revives_it(
    stack: Stack,
) -> None:
    with receiver() as hooks, client() as http:
        hooks.default = lambda _: Reply(500)
        hook = make_hook(stack, hooks.url)
        delivery_id = hook.delivery()
        started = now = utcnow()
        waits: list[timedelta] = []
        for number in range(1, MAX_ATTEMPTS + 1):
            early = attempt(stack, delivery_id, now=now - timedelta(seconds=1), http=http)
            assert number == 1 or early is None, "an attempt ran before it was due"
            assert attempt(stack, delivery_id, now=now, http=http) is not None
            row = delivery(stack, delivery_id)
            assert row.attempts == number
            if number == MAX_ATTEMPTS:
                break
            assert row.status == "failed" and row.next_attempt_at is not None
            waits.append(row.next_attempt_at - now)
            now = row.next_attempt_at
        dead = delivery(stack, delivery_id)
        assert (dead.status, dead.next_attempt_at, dead.last_status_code) == ("dead", None, 500)
        for wait, planned in zip(waits, RETRY_DELAYS, strict=True):
            assert planned * (1 - JITTER) <= wait <= planned * (1 + JITTER)
        schedule = sum(RETRY_DELAYS, timedelta())  # about three days and three hours
        assert schedule * (1 - JITTER) <= now - started <= schedule * (1 + JITTER)
        assert attempt(stack, delivery_id, now=now + timedelta(days=30), http=http) is None
        assert len(hooks.requests) == MAX_ATTEMPTS

        listed = stack.client.get("/v1/deliveries?status=dead", headers=hook.headers).json()
        assert [d["id"] for d in listed["items"]] == [delivery_id]
        replayed = stack.client.post(f"/v1/deliveries/{delivery_id}/replay", headers=hook.headers)
        assert replayed.status_code == 202, replayed.text
        assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)

        hooks.default = lambda _: Reply(204)
        outcome = attempt(stack, delivery_id, now=utcnow(), http=http)
        assert outcome is not None and outcome.ok
        assert {request.webhook_id for request in hooks.requests} == {f"msg_{delivery_id}"}
        last = hooks.requests[-1]
        assert Webhook(hook.secret).verify(last.body, last.headers)["type"] == "unit.available"
    assert delivery(stack, delivery_id).status == "delivered"
    log = attempts(stack, delivery_id)
    assert sorted(a.status_code or 0 for a in log) == [204] + [500] * MAX_ATTEMPTS  # clock: mixed
    again = stack.client.post(f"/v1/deliveries/{delivery_id}/replay", headers=hook.headers)
    assert again.status_code == 409
