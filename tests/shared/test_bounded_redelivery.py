"""Bounded redelivery: work whose worker dies every time is run MAX_STARTS times, then dead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from shared import worker
from shared.db import make_engine
from shared.models import TaskRun, utcnow
from shared.queue import RESENT
from shared.redelivery import MAX_STARTS, forget_stale, note_finish, note_start, task_key


def counted(engine: Engine) -> list[str]:
    """The keys of the works whose starts are counted."""
    with Session(engine) as session:
        return list(session.scalars(select(TaskRun.key)))


def start(session: Session, key: str, now: object = None) -> str | None:
    cause = note_start(
        session, key=key, name="matcher.handle_event", arguments=["evt_1"], now=now or utcnow()
    ).cause
    session.commit()
    return cause


def test_work_that_kills_its_worker_every_time_is_dead_after_the_limit(database_url: str) -> None:
    engine = make_engine(database_url)
    key = task_key("matcher.handle_event", ["evt_1"])
    with Session(engine) as session:
        # given a worker that died MAX_STARTS times running the same work
        for _ in range(MAX_STARTS):
            assert start(session, key) is None
        # when it is delivered once more, then it is dead and must not run
        cause = start(session, key)
        assert cause is not None and f"died {MAX_STARTS} times" in cause
        assert start(session, key) == cause  # and stays dead on later deliveries
        # a finish does not clear a dead record: operations must see it
        note_finish(session, keys=[key])
        session.commit()
        run = session.scalars(select(TaskRun)).one()
        assert run.dead_at is not None and run.arguments == ["evt_1"]
        assert run.task_name == "matcher.handle_event"
    engine.dispose()


def test_work_that_finishes_is_forgotten_and_its_count_starts_again(database_url: str) -> None:
    engine = make_engine(database_url)
    key, other = task_key("t", ["a"]), task_key("t", ["b"])
    assert key != other and key == task_key("t", ["a"])
    with Session(engine) as session:
        for _ in range(MAX_STARTS):
            assert start(session, key) is None
            note_finish(session, keys=[key])  # each run returned: no worker was lost
            session.commit()
        assert session.scalars(select(TaskRun)).all() == []
        # a start whose message the broker lost is forgotten after a day; a fresh one is kept
        start(session, key, now=utcnow() - timedelta(days=2))
        start(session, other)
        assert forget_stale(session, now=utcnow()) == 1
        session.commit()
        assert [run.key for run in session.scalars(select(TaskRun))] == [other]
    engine.dispose()


def test_a_work_that_came_back_counts_its_lost_first_start(database_url: str) -> None:
    engine = make_engine(database_url)
    key = task_key("t", ["a"])
    with Session(engine) as session:
        # given a work whose first start was not counted (first starts never are)
        # when it comes back (redelivered, or re-sent by the relay), then that start is its second
        begun = note_start(session, key=key, name="t", arguments=["a"], now=utcnow(), restart=True)
        session.commit()
        assert begun == (2, None)
        # so a work whose worker dies every time still runs MAX_STARTS times in all
        for _ in range(3, MAX_STARTS + 1):
            assert start(session, key) is None
        assert start(session, key) is not None
    engine.dispose()


def test_a_batch_restarted_after_its_worker_was_lost_goes_back_one_task_per_item(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(sqlite_url)
    monkeypatch.setattr(worker, "get_session_factory", lambda: sessionmaker(engine))
    app = Celery("split-test", broker="memory://", task_cls="shared.redelivery:BoundedTask")
    ran: list[list[str]] = []

    @app.task(name="test.batch", splits=True)
    def batch(items: list[str]) -> None:
        ran.append(items)

    def published() -> list[Any]:
        """The messages sent: (first argument, headers)."""
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue(app.conf.task_default_queue)
            found = []
            while queue.qsize():
                message = queue.get(timeout=1)
                found.append((message.payload[0], message.headers))
                message.ack()
            return found

    # a batch that starts for the first time runs whole, and nothing is counted
    batch.apply(args=[["a", "b"]])
    assert ran == [["a", "b"]] and published() == [] and counted(engine) == []
    # given a batch whose first start never finished (its worker was killed)
    items = ["c", "d", "e"]
    # when it comes back, then it does not run but is sent back as one task per item, each
    # marked as sent before (so each is counted, and would die, alone)
    batch.apply(args=[items], headers={RESENT: True})
    assert ran == [["a", "b"]]
    sent = published()
    assert [first for first, _ in sent] == [[["c"]], [["d"]], [["e"]]]
    assert all(headers.get(RESENT) for _, headers in sent)
    for item in items:
        batch.apply(args=[[item]], headers={RESENT: True})
    assert ran == [["a", "b"], ["c"], ["d"], ["e"]]
    # and every count is forgotten once its work returned
    assert counted(engine) == []
    engine.dispose()


def test_work_already_done_is_not_run_and_its_start_is_forgotten(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(sqlite_url)
    monkeypatch.setattr(worker, "get_session_factory", lambda: sessionmaker(engine))
    app = Celery("done-test", broker="memory://", task_cls="shared.redelivery:BoundedTask")
    ran: list[list[str]] = []
    done_items = {"a", "b"}

    def done(session: Session, items: list[str]) -> bool:
        assert session.in_transaction()  # (asked in the transaction that counts the start)
        return set(items) <= done_items

    @app.task(name="test.done", splits=True, done=staticmethod(done))
    def work(items: list[str]) -> None:
        ran.append(items)

    # given work that came back whose items were all done by someone else (a round, a
    # batch), it is skipped
    work.apply(args=[["a", "b"]], headers={RESENT: True})
    assert ran == []
    # work that came back with anything left to do runs
    work.apply(args=[["c"]], headers={RESENT: True})
    assert ran == [["c"]]
    # a first start is not asked (the work itself skips what was done) and not counted
    work.apply(args=[["a", "b"]])
    assert ran == [["c"], ["a", "b"]]
    # and no start is left counted once its work returned
    assert counted(engine) == []
    engine.dispose()
