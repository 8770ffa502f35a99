"""The delivery sweep runs on several workers at once (PostgreSQL): two sweeps together hand
out disjoint deliveries (FOR UPDATE SKIP LOCKED), so no delivery goes to two tasks."""

from __future__ import annotations

from notifier_support import make_hook
from sqlalchemy.orm import Session

from services.notifier.sweep import dispatch_due
from shared.models import utcnow
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
