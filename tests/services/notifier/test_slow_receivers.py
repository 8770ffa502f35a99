"""A receiver that hangs holds only its own slots: deliveries to others go straight through.
Real threads of a worker process's sender, real receivers, PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from notifier_support import client, make_hook
from receivers import Reply, receiver
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.notifier import delivery as webhook
from services.notifier.clients import WebhookClient
from services.notifier.ledger import IN_FLIGHT_PER_ENDPOINT, SENDING_PER_ENDPOINT, Claim
from services.notifier.sender import Sender
from shared.models import Delivery, utcnow
from support import Stack

TIMEOUT = 10.0  # far longer than the test: nothing in it times out
CAPACITY = 16


@pytest.fixture
def sender(pg_stack: Stack) -> Iterator[Sender]:
    clients: dict[str, WebhookClient] = {}

    def send(claim: Claim) -> webhook.Outcome:  # one small client per endpoint, as in workers
        http = clients.setdefault(claim.endpoint_id, client(timeout=TIMEOUT))
        return webhook.send(claim.message, claim.url, http=http, timeout=TIMEOUT, now=utcnow())

    sessions = sessionmaker(pg_stack.engine, expire_on_commit=False)
    running = Sender(sessions, capacity=CAPACITY, send=send)
    yield running
    running.close(timeout=10)
    for http in clients.values():
        http.close()


def statuses(stack: Stack, endpoint_id: str) -> dict[str, int]:
    with stack.session() as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.endpoint_id == endpoint_id)
            .group_by(Delivery.status)
        )
        return {status: count for status, count in rows}


def test_a_hanging_receiver_does_not_delay_deliveries_to_others(
    pg_stack: Stack, sender: Sender
) -> None:
    with receiver() as stuck, receiver() as fine:
        stuck.default = lambda _: Reply(hang=True)
        slow, fast = make_hook(pg_stack, stuck.url), make_hook(pg_stack, fine.url)
        slow_ids = [slow.delivery() for _ in range(SENDING_PER_ENDPOINT + 2)]
        fast_ids = [fast.delivery() for _ in range(3 * IN_FLIGHT_PER_ENDPOINT)]
        started = time.monotonic()
        assert sender.deliver(slow_ids) == len(slow_ids)  # the hanging receiver's come first
        sender.deliver(fast_ids)
        fine.wait_for(len(fast_ids), timeout=TIMEOUT)
        while statuses(pg_stack, fast.id).get("delivered") != len(fast_ids):
            assert time.monotonic() - started < TIMEOUT, statuses(pg_stack, fast.id)
            time.sleep(0.02)
        # Everything to the healthy receiver was delivered while the others still hang, ...
        assert len(stuck.requests) == SENDING_PER_ENDPOINT  # ... holding only their own slots
        assert statuses(pg_stack, slow.id) == {"sending": len(slow_ids)}  # 2 wait in its lane
        assert sender.in_flight() == len(slow_ids) <= CAPACITY
        # When the receiver answers at last, the ones waiting in its lane go out.
        stuck.release()
        stuck.wait_for(len(slow_ids), timeout=TIMEOUT)
        assert sender.drain(timeout=TIMEOUT)
    assert statuses(pg_stack, slow.id) == {"delivered": len(slow_ids)}
