"""The delivery sweep runs on several workers at once (PostgreSQL): two sweeps together hand
out disjoint deliveries (FOR UPDATE SKIP LOCKED), so no delivery goes to two tasks; a claim of
what was handed out waits (boundedly) for rows others hold."""

from __future__ import annotations

import threading
import time

import pytest
from notifier_support import make_hook
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from services.notifier.ledger import claim
from services.notifier.sweep import dispatch_due
from shared.models import Delivery, utcnow
from support import Stack


def test_two_sweeps_at_once_hand_out_disjoint_deliveries(pg_stack: Stack) -> None:
    hook = make_hook(pg_stack, "http://127.0.0.1:9/hooks")  # never sent: only handed out
    made = {hook.delivery() for _ in range(6)}
    with Session(pg_stack.engine) as first, Session(pg_stack.engine) as second:
        _, first_ids = dispatch_due(first, now=utcnow())  # holds its rows until commit
        _, second_ids = dispatch_due(second, now=utcnow())
        first.commit()
        second.commit()
    assert set(first_ids) == made and second_ids == []
    with Session(pg_stack.engine) as third:  # stamped: not due again until the stamp passes
        assert dispatch_due(third, now=utcnow())[1] == []


def test_a_claim_waits_for_a_handed_out_row_another_transaction_holds(pg_stack: Stack) -> None:
    """A row held for a moment is waited for and claimed, not skipped (a skipped row would keep
    the sweep's stamp until it ran out); a row held by a stuck transaction fails the claim
    after the bounded wait instead of holding up the process."""
    hook = make_hook(pg_stack, "http://127.0.0.1:9/hooks")  # never sent: only claimed
    delivery_id = hook.delivery()
    with Session(pg_stack.engine) as sweep:
        stamp, handed_out = dispatch_due(sweep, now=utcnow())
        sweep.commit()
    assert handed_out == [delivery_id]

    def hold(seconds: float) -> threading.Thread:
        locked = threading.Event()

        def run() -> None:
            with Session(pg_stack.engine) as other:
                other.execute(
                    select(Delivery.id).where(Delivery.id == delivery_id).with_for_update()
                )
                locked.set()
                time.sleep(seconds)
                other.rollback()

        holder = threading.Thread(target=run)
        holder.start()
        assert locked.wait(10)
        return holder

    holder = hold(8.0)  # longer than the claim's bounded wait
    with Session(pg_stack.engine) as claimer, pytest.raises(OperationalError):
        claim(claimer, [delivery_id], now=utcnow(), limit=1, stamp=stamp)
    holder.join()
    holder = hold(0.5)  # a moment
    with Session(pg_stack.engine) as claimer:
        claims = claim(claimer, [delivery_id], now=utcnow(), limit=1, stamp=stamp)
        claimer.commit()
    holder.join()
    assert [c.delivery_id for c in claims] == [delivery_id]
