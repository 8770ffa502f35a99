"""Bounded redelivery: work whose worker dies every time is run MAX_STARTS times, then dead."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared import worker
from shared.db import make_engine
from shared.models import TaskRun, utcnow
from shared.redelivery import MAX_STARTS, forget_stale, note_finish, note_start, task_key


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


def test_a_finished_work_is_forgotten_with_the_next_start(database_url: str) -> None:
    engine = make_engine(database_url)
    first, second = task_key("t", ["a"]), task_key("t", ["b"])
    with Session(engine) as session:
        # given a work that started and returned (its forgetting deferred to the next start)
        assert start(session, first) is None
        # when the process starts its next work, then only that one is counted
        begun = note_start(
            session, key=second, name="t", arguments=["b"], now=utcnow(), finished=[first]
        )
        session.commit()
        assert begun == (1, None)
        assert [run.key for run in session.scalars(select(TaskRun))] == [second]
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
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue(app.conf.task_default_queue)
            found = []
            while queue.qsize():
                message = queue.get(timeout=1)
                found.append(message.payload[0])
                message.ack()
            return found

    # a batch that starts for the first time runs whole, and is forgotten when it returns
    batch.apply(args=[["a", "b"]])
    assert ran == [["a", "b"]] and published() == []
    # given a batch whose first start never finished (its worker was killed)
    items = ["c", "d", "e"]
    with Session(engine) as session:
        start(session, task_key("test.batch", [items]))
    # when it is delivered again, then it does not run but comes back as one task per item
    batch.apply(args=[items])
    assert ran == [["a", "b"]]
    assert published() == [[["c"]], [["d"]], [["e"]]]
    # each of which runs (and would be counted, and die, alone)
    for item in items:
        batch.apply(args=[[item]])
    assert ran == [["a", "b"], ["c"], ["d"], ["e"]]
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

    # given work whose items were all done by someone else (a round, a batch), it is skipped
    work.apply(args=[["a", "b"]])
    assert ran == []
    # work with anything left to do runs
    work.apply(args=[["b", "c"]])
    assert ran == [["b", "c"]]
    # and neither start is left counted once the next work starts
    work.apply(args=[["d"]])
    with Session(engine) as session:
        keys = set(session.scalars(select(TaskRun.key)))
    assert keys == {task_key("test.done", [["d"]])}
    engine.dispose()
