"""Worker crashes and redelivered tasks: leases, sweep stamps and the at-least-once window."""

from __future__ import annotations

from datetime import timedelta

from notifier_support import Hook, attempt, attempts, client, delivery, make_hook, take
from receivers import Reply, receiver

from services.notifier import delivery as webhook
from services.notifier.dues import LOST
from services.notifier.ledger import IN_FLIGHT_PER_ENDPOINT, Claim, lease_length
from services.notifier.outcomes import record
from services.notifier.sweep import dispatch_due
from shared.models import utcnow
from support import Stack


def sent(claim_: Claim, http: object) -> webhook.Outcome:
    return webhook.send(claim_.message, claim_.url, http=http, timeout=2, now=utcnow())  # type: ignore[arg-type]


def test_a_redelivered_task_sends_nothing_once_a_2xx_is_recorded(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        delivery_id = make_hook(stack, hooks.url).delivery()
        assert attempt(stack, delivery_id, now=utcnow(), http=http) is not None
        later = utcnow() + lease_length() * 3
        assert take(stack, [delivery_id], now=later) == []
        with stack.session() as session:
            assert dispatch_due(session, now=later)[1] == []
        assert len(hooks.requests) == 1


def test_a_crash_between_send_and_record_sends_again_with_the_same_id(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        delivery_id = make_hook(stack, hooks.url).delivery()
        now = utcnow()
        [first] = take(stack, [delivery_id], now=now)
        assert sent(first, http).ok  # ... and the worker dies before recording it
        assert take(stack, [delivery_id], now=now + timedelta(seconds=1)) == []  # leased
        after_lease = first.lease_until + timedelta(seconds=1)
        with stack.session() as session:
            stamp, handed_out = dispatch_due(session, now=after_lease)
        assert handed_out == [delivery_id]
        [second] = take(stack, [delivery_id], now=after_lease, stamp=stamp)
        assert second.attempt == 2
        with stack.session() as session:
            record(session, [(second, sent(second, http))], now=after_lease)
    assert [r.webhook_id for r in hooks.requests] == [f"msg_{delivery_id}"] * 2
    log = attempts(stack, delivery_id)
    assert [(a.status_code, a.error) for a in log] == [(None, LOST), (200, None)]
    assert delivery(stack, delivery_id).status == "delivered"


def test_a_late_record_does_not_overrule_the_attempt_that_took_over(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        delivery_id = make_hook(stack, hooks.url).delivery()
        now = utcnow()
        [stalled] = take(stack, [delivery_id], now=now)
        later = stalled.lease_until + timedelta(seconds=1)
        [current] = take(stack, [delivery_id], now=later)
        hooks.reply(Reply(500), Reply(503))
        with stack.session() as session:
            record(session, [(current, sent(current, http))], now=later)
        scheduled = delivery(stack, delivery_id).next_attempt_at
        with stack.session() as session:  # the stalled worker wakes up and records a failure
            record(session, [(stalled, sent(stalled, http))], now=later)
        assert delivery(stack, delivery_id).next_attempt_at == scheduled
        with stack.session() as session:  # but a 2xx always counts
            record(session, [(stalled, webhook.Outcome(True, 200, None, 0.1))], now=later)
    assert delivery(stack, delivery_id).status == "delivered"


def test_sweep_stamps_hand_each_delivery_to_one_task(lite_stack: Stack) -> None:
    with receiver() as hooks:
        hook = make_hook(lite_stack, hooks.url)
        ids = [hook.delivery() for _ in range(2)]
        now = utcnow()
        with lite_stack.session() as session:
            stamp, handed_out = dispatch_due(session, now=now)
        assert sorted(handed_out) == sorted(ids)
        assert take(lite_stack, ids, now=now) == []  # an old task without the stamp: nothing
        assert take(lite_stack, ids, now=now, stamp=now) == []  # a stale stamp: nothing
        [taken] = take(lite_stack, ids, now=now, stamp=stamp, limit=1)
        [other] = [i for i in ids if i != taken.delivery_id]
        assert delivery(lite_stack, other).next_attempt_at == now  # beyond the limit: due again
        copy = take(lite_stack, ids, now=now, stamp=stamp)  # a redelivered copy of the task
        assert [c.delivery_id for c in copy] == [other]  # never the one already in flight


def test_the_sweep_skips_an_endpoint_whose_slots_are_all_taken(stack: Stack) -> None:
    with receiver() as busy_hooks, receiver() as quiet_hooks:
        busy: Hook = make_hook(stack, busy_hooks.url)
        quiet = make_hook(stack, quiet_hooks.url)
        busy_ids = [busy.delivery() for _ in range(IN_FLIGHT_PER_ENDPOINT + 2)]
        quiet_id = quiet.delivery()
        now = utcnow()
        in_flight = take(stack, busy_ids, now=now, limit=len(busy_ids))
        assert len(in_flight) == IN_FLIGHT_PER_ENDPOINT  # the endpoint's limit, not the task's
        with stack.session() as session:
            _, handed_out = dispatch_due(session, now=now)
        assert handed_out == [quiet_id]


def test_the_sweep_hands_out_no_more_of_an_endpoint_than_its_free_slots(pg_stack: Stack) -> None:
    """On PostgreSQL: the processes sending an endpoint take its next deliveries as slots
    free, so the sweep hands out only what its slots have room for, not rows a claim would
    pass over and write back."""
    with receiver() as busy_hooks, receiver() as quiet_hooks:
        busy: Hook = make_hook(pg_stack, busy_hooks.url)
        quiet = make_hook(pg_stack, quiet_hooks.url)
        in_flight_ids = [busy.delivery() for _ in range(IN_FLIGHT_PER_ENDPOINT - 2)]
        now = utcnow()
        assert len(take(pg_stack, in_flight_ids, now=now, limit=len(in_flight_ids))) == len(
            in_flight_ids
        )
        waiting = [busy.delivery() for _ in range(5)]
        quiet_ids = [quiet.delivery() for _ in range(3)]
        with pg_stack.session() as session:
            _, handed_out = dispatch_due(session, now=utcnow())
        assert sorted(handed_out) == sorted(waiting[:2] + quiet_ids)  # the oldest two of its five
