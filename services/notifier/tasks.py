"""Notifier tasks (thin): fan an event out, hand deliveries to this process's sender, sweep."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery.signals import worker_process_shutdown

from services.notifier.fanout import fan_out
from services.notifier.ledger import lease_length
from services.notifier.sender import current_sender, get_sender
from services.notifier.sweep import dispatch_due
from shared.models import utcnow
from shared.queue import TaskName, celery_app
from shared.worker import in_transaction

DISPATCH_CHUNK = 32  # deliveries per deliver task handed out by the sweep


@celery_app.task(name=TaskName.notify_event)
def notify_event(event_id: str) -> None:
    """Fan an event out to its subscribers and start sending at once."""
    created = in_transaction(fan_out, event_id)
    if created:
        get_sender().deliver(created)


@celery_app.task(name=TaskName.deliver)
def deliver(delivery_ids: list[str] | str, stamp: str | None = None) -> None:
    """Attempt the given deliveries (those still due, or still carrying the sweep's stamp)."""
    ids = [delivery_ids] if isinstance(delivery_ids, str) else delivery_ids
    get_sender().deliver(ids, stamp=datetime.fromisoformat(stamp) if stamp else None)


@celery_app.task(name=TaskName.sweep_deliveries)
def sweep_deliveries() -> None:
    """Hand out the deliveries whose next attempt is due (retries live in the database)."""
    stamp, due = in_transaction(dispatch_due, now=utcnow())
    for start in range(0, len(due), DISPATCH_CHUNK):
        chunk = due[start : start + DISPATCH_CHUNK]
        celery_app.send_task(TaskName.deliver, args=[chunk, stamp.isoformat()])


@worker_process_shutdown.connect
def finish_sending(**_: Any) -> None:
    """A stopping worker records the attempts it has in flight before it goes."""
    sender = current_sender()
    if sender is not None:
        sender.drain(timeout=lease_length().total_seconds())
