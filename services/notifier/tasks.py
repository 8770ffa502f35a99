"""Notifier tasks (thin): fan an event out, hand deliveries to this process's sender, sweep."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery.signals import worker_process_shutdown
from sqlalchemy.orm import Session

from services.notifier.fanout import fan_out_all, fan_out_and_claim
from services.notifier.ledger import lease_length
from services.notifier.sender import current_sender, get_sender
from services.notifier.sweep import dispatch_due
from shared.consumption import all_consumed
from shared.domain.events import Consumer
from shared.models import utcnow
from shared.queue import TaskName, celery_app
from shared.worker import in_transaction

log = logging.getLogger(__name__)

DISPATCH_CHUNK = 32  # deliveries per deliver task handed out by the sweep
FAN_OUT_SLOTS = 64  # first attempts a fan-out may lease in its own transaction


def _notified(session: Session, event_ids: list[str] | str) -> bool:
    return all_consumed(session, event_ids, Consumer.notifier)


@celery_app.task(name=TaskName.notify_event, splits=True, done=staticmethod(_notified))
def notify_event(event_ids: list[str] | str) -> None:
    """Fan events out to their subscribers (the events sent together, in one transaction,
    which also leases the first attempts this process has room for) and start sending at
    once. A batch restarted after its worker was lost is sent back as one task per event
    (shared/redelivery.py), so a poison event dies alone."""
    ids = [event_ids] if isinstance(event_ids, str) else event_ids
    failure: Exception | None = None
    sender = get_sender()
    try:
        with sender.leasing(FAN_OUT_SLOTS) as lease:
            claims, created = in_transaction(
                fan_out_and_claim, ids, limit=lease.limit, held=lease.held
            )
            lease.start(claims)
    except Exception:
        if len(ids) == 1:
            raise
        log.warning("a batch of events failed; acting on each alone", exc_info=True)
        created, failure = _one_by_one(ids)
    if created:  # (those no slot was free for at once)
        sender.deliver(created)
    if failure is not None:  # (the relay re-sends what stays unconsumed)
        raise failure


def _one_by_one(event_ids: list[str]) -> tuple[list[str], Exception | None]:
    """Each event in its own transaction, so one that fails holds back none of the others:
    the deliveries made, and the first failure."""
    created: list[str] = []
    failure: Exception | None = None
    for event_id in event_ids:
        try:
            created += in_transaction(fan_out_all, [event_id])
        except Exception as error:
            failure = failure or error
    return created, failure


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
