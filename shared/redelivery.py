"""Bounded redelivery: work that keeps killing its worker is run a few times, then recorded dead.

With `acks_late` and `reject_on_worker_lost`, a task whose worker process dies (SIGKILL, a crash,
out of memory) goes back to the queue and runs again, which is what a lost worker needs; but
work that itself kills the worker would then do so for ever. So each start of a work that came
back is counted in the database, in its own transaction, before the work runs, and the count is
cleared once the work returns (or raises: an exception is not a lost worker). A count past
MAX_STARTS means the worker died every time: the work is marked dead with its cause, shown in
/v1/ops/queues, and skipped when delivered again.

A work comes back as a message the broker marks redelivered (Redis puts a lost worker's
message back, and marks it so) or as one the outbox relay re-sends (marked `resent`; the
embedded broker loses a lost worker's message, and the relay re-sends its events). A first
start is not counted: it costs every task a transaction, and a restart is counted as the
second start (the first one is known to have been lost). So a work whose worker dies every
time runs MAX_STARTS times, as before; one whose message the broker lost before any start is
counted one start early. Beat's sweeps take no arguments and are not counted: a new one comes
every few seconds, and stopping them would stop the service.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple

from celery import Task
from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.models import TaskRun, utcnow
from shared.queue import RESENT
from shared.worker import in_transaction

log = logging.getLogger(__name__)

MAX_STARTS = 5  # starts without a finish (each one a worker lost mid-task) before it is dead
FORGET_AFTER = timedelta(days=1)  # a lone unfinished start whose message is gone (broker lost)


def task_key(name: str, arguments: list[Any]) -> str:
    """The same work has the same key, on every redelivery and every relay re-publish."""
    text = json.dumps([name, arguments], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Start(NamedTuple):
    """One start of a work: how many there have been (this one included), and why the work is
    dead (then it must not run) or None."""

    starts: int
    cause: str | None


def note_start(
    session: Session,
    *,
    key: str,
    name: str,
    arguments: list[Any],
    now: datetime,
    restart: bool = False,
) -> Start:
    """Count one start of the work; a `restart` (a message that came back) not counted
    before counts with the first start that was lost."""
    values = {
        "run_key": key,
        "run_name": name,
        "run_arguments": arguments,
        "started_at": now,
        "first_starts": 2 if restart else 1,
    }
    statement = _count_start(session.get_bind().dialect.name == "postgresql")
    run = session.execute(statement, values).one()
    if run.dead_at is not None:
        return Start(run.starts, str(run.cause))
    if run.starts <= MAX_STARTS:
        return Start(run.starts, None)
    cause = (
        f"its worker process died {run.starts - 1} times while running it (killed, crashed"
        " or out of memory); not run again"
    )
    session.execute(update(TaskRun).where(TaskRun.key == key).values(dead_at=now, cause=cause))
    log.error("task is dead after repeated worker loss", extra={"task": name, "key": key})
    return Start(run.starts, cause)


def note_finish(session: Session, *, keys: Sequence[str]) -> None:
    """The works returned: forget their starts (a dead record stays for operations)."""
    session.execute(_FORGET, {"keys": sorted(set(keys))})


# Every task runs these: Core statements on the table, built once (the ORM's bulk statements
# built per call cost a task more CPU than the rest of its bookkeeping).
_RUNS: Any = TaskRun.__table__
_FORGET = delete(_RUNS).where(
    _RUNS.c.key.in_(bindparam("keys", expanding=True)), _RUNS.c.dead_at.is_(None)
)


@cache
def _count_start(postgres: bool) -> Any:
    insert = postgresql_insert if postgres else sqlite_insert
    statement = insert(_RUNS).values(
        key=bindparam("run_key"),
        task_name=bindparam("run_name"),
        arguments=bindparam("run_arguments", type_=_RUNS.c.arguments.type),
        starts=bindparam("first_starts"),
        first_started_at=bindparam("started_at", type_=_RUNS.c.first_started_at.type),
        last_started_at=bindparam("started_at", type_=_RUNS.c.last_started_at.type),
    )
    return statement.on_conflict_do_update(
        index_elements=[_RUNS.c.key],
        set_={
            "starts": _RUNS.c.starts + 1,
            "last_started_at": statement.excluded.last_started_at,
        },
    ).returning(_RUNS.c.starts, _RUNS.c.dead_at, _RUNS.c.cause)


def forget_stale(session: Session, *, now: datetime) -> int:
    """Drop counts whose message will never come back (the broker lost it); dead ones stay."""
    result = session.execute(
        delete(TaskRun).where(
            TaskRun.dead_at.is_(None), TaskRun.last_started_at < now - FORGET_AFTER
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


class BoundedTask(Task[Any, Any]):
    """The app's task class: counts the starts of works with arguments that came back (see
    the module), and forgets them once they return.

    A task made with `splits=True` takes a list of items as its first argument; started again
    after its worker was lost, a list of several is not run but sent back as one task per item,
    so an item that kills its worker is counted, and dies, alone, without taking the others."""

    splits = False
    # done(session, *args): whether the work was already done (its events recorded by their
    # consumer, say by a round or a batch that took them first). Asked of a work that came
    # back, in the transaction that counts its start; work done is not run again. (A first
    # start needs no such check: the task's own work skips what its consumer recorded.)
    done: Callable[..., bool] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly or not args or not self._came_back():
            return super().__call__(*args, **kwargs)
        arguments = [*args, kwargs] if kwargs else list(args)
        key = task_key(self.name, arguments)

        def start_unless_done(session: Session) -> Start | None:
            """The start counted; or None, the work forgotten, if it was done already."""
            start = note_start(
                session, key=key, name=self.name, arguments=arguments, now=utcnow(), restart=True
            )
            if start.cause is None and self.done is not None and self.done(session, *args):
                note_finish(session, keys=[key])
                return None
            return start

        start = in_transaction(start_unless_done)
        if start is None:
            return None
        if start.cause is not None:
            log.warning("skipping dead task", extra={"task": self.name, "key": key})
            return None
        try:
            if self.splits and isinstance(args[0], list) and len(args[0]) > 1:
                log.warning("splitting a restarted batch", extra={"task": self.name, "key": key})
                self._send_back_one_by_one(args, kwargs)
                return None
            return super().__call__(*args, **kwargs)
        finally:
            in_transaction(note_finish, keys=[key])

    def _came_back(self) -> bool:
        """Whether this message is a work that came back: redelivered by the broker after its
        worker was lost, or re-sent by the outbox relay or a split."""
        delivery = self.request.delivery_info or {}
        headers = self.request.headers or {}  # (a worker also sets them as attributes)
        return bool(delivery.get("redelivered") or headers.get(RESENT))

    def _send_back_one_by_one(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        request_id = getattr(self.request, "request_id", None)
        for item in args[0]:
            headers: dict[str, Any] = {"sent_at": str(time.time()), RESENT: True}
            if request_id:
                headers["request_id"] = str(request_id)
            self.apply_async(args=([item], *args[1:]), kwargs=kwargs, headers=headers)
