"""Worker process wiring: JSON logs with the event and request ids of the task in hand, and a
heartbeat row so operations see which workers are alive and what they consume (any broker)."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery.signals import (
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    worker_init,
    worker_ready,
    worker_shutdown,
)
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from shared import logs
from shared.config import get_settings
from shared.db import get_engine, unit_of_work
from shared.heap import freeze_startup
from shared.models import WorkerHeartbeat, utcnow
from shared.queue import TaskName

log = logging.getLogger("housingfirst.worker")
HEARTBEAT_SECONDS = 10.0
EVENT_TASKS = {TaskName.match_event.value, TaskName.notify_event.value}
_stop = threading.Event()
_bindings: dict[str, Any] = {}


@setup_logging.connect
def _json_logs(**_: Any) -> None:
    logs.configure(os.environ.get("HOUSINGFIRST_SERVICE", "worker"), get_settings().log_level)


@worker_init.connect
def _load_before_fork(**_: Any) -> None:
    # The database driver and the engine are loaded once, in the parent, before the pool forks:
    # each pool process starts with them instead of loading them during its first task.
    get_engine()
    freeze_startup()


@task_prerun.connect
def _bind_ids(task_id: str, task: Any, args: tuple[Any, ...], **_: Any) -> None:
    event = None
    if task.name in EVENT_TASKS and args:  # one event id, or a batch of them
        event = args[0] if isinstance(args[0], str) else ",".join(map(str, args[0]))
    request = getattr(task.request, "request_id", None)
    context = logs.bound(request=request, event=event)
    context.__enter__()
    _bindings[task_id] = (context, time.perf_counter())


@task_postrun.connect
def _unbind_ids(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    bound = _bindings.pop(task_id, None)
    if bound is None:
        return
    context, started = bound
    log.info(
        "task",
        extra={
            "task": task.name,
            "state": state,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    context.__exit__(None, None, None)


@task_failure.connect
def _log_failure(task_id: str, exception: BaseException, sender: Any, **_: Any) -> None:
    log.error(
        "task failed",
        extra={"task": sender.name, "task_id": task_id, "error": type(exception).__name__},
    )


def _beat(hostname: str, queues: list[str]) -> None:
    dialect = postgresql if get_settings().database_url.startswith("postgres") else sqlite
    while not _stop.is_set():
        try:
            with unit_of_work() as session:
                now = utcnow()
                statement = dialect.insert(WorkerHeartbeat).values(
                    hostname=hostname,
                    queues=queues,
                    pid=os.getpid(),
                    started_at=now,
                    last_seen_at=now,
                )
                session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[WorkerHeartbeat.hostname],
                        set_={"last_seen_at": now, "queues": queues, "pid": os.getpid()},
                    )
                )
        except Exception:
            log.warning("heartbeat not written; the database may be down")
        _stop.wait(HEARTBEAT_SECONDS)


@worker_ready.connect
def _start_heartbeat(sender: Any, **_: Any) -> None:
    queues = sorted(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)
    threading.Thread(
        target=_beat, args=(sender.hostname, queues), name="heartbeat", daemon=True
    ).start()
    log.info("worker ready", extra={"worker": sender.hostname, "queues": queues})


@worker_shutdown.connect
def _stop_heartbeat(sender: Any, **_: Any) -> None:
    _stop.set()
    try:
        with unit_of_work() as session:
            session.execute(
                delete(WorkerHeartbeat).where(WorkerHeartbeat.hostname == sender.hostname)
            )
    except Exception:
        log.warning("could not remove the heartbeat on shutdown")
