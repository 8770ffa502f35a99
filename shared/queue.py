"""The Celery app, queue names and task routes (one place)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from celery import Celery
from kombu import Queue as KombuQueue

from shared import broker
from shared.config import Settings, get_settings

EMBEDDED_POLLING_INTERVAL_SECONDS = 0.02
VISIBILITY_TIMEOUT_SECONDS = 120
# A message header: this task's work was sent before and may have been started (the outbox
# relay re-sending unfinished events, a restarted batch split up), so its start is counted.
RESENT = "resent"


class Queue(StrEnum):
    matching = "matching"
    notifications = "notifications"
    maintenance = "maintenance"


class TaskName(StrEnum):
    match_event = "matcher.handle_event"
    match_region = "matcher.match_region"
    relay_outbox = "maintenance.relay_outbox"
    sweep_regions = "maintenance.sweep_regions"
    expire_offers = "maintenance.expire_offers"
    notify_event = "notifier.handle_event"
    deliver = "notifier.deliver"
    sweep_deliveries = "maintenance.sweep_deliveries"
    assign_waiting_support = "notifier.assign_waiting_support"


ROUTES: dict[str, Queue] = {
    TaskName.match_event: Queue.matching,
    TaskName.match_region: Queue.matching,
    TaskName.relay_outbox: Queue.maintenance,
    TaskName.sweep_regions: Queue.maintenance,
    TaskName.expire_offers: Queue.maintenance,
    TaskName.notify_event: Queue.notifications,
    TaskName.deliver: Queue.notifications,
    TaskName.sweep_deliveries: Queue.maintenance,
    TaskName.assign_waiting_support: Queue.notifications,
}

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "relay-outbox": {"task": TaskName.relay_outbox, "schedule": 2.0},
    "sweep-regions": {"task": TaskName.sweep_regions, "schedule": 10.0},
    "sweep-deliveries": {"task": TaskName.sweep_deliveries, "schedule": 5.0},
    "expire-offers": {"task": TaskName.expire_offers, "schedule": 15.0},
    "assign-waiting-support": {"task": TaskName.assign_waiting_support, "schedule": 5.0},
}


def _use_fast_embedded_polling() -> None:
    """kombu's SQLAlchemy transport polls once a second by default; that is too slow to feel
    immediate. It must be set on the class: broker_transport_options go to create_engine."""
    from kombu.transport import sqlalchemy as kombu_sqlalchemy

    kombu_sqlalchemy.Transport.polling_interval = EMBEDDED_POLLING_INTERVAL_SECONDS


def make_celery(settings: Settings) -> Celery:
    """A Celery app for the configured broker, with the routes and reliability options."""
    app = Celery(
        "housingfirst", broker=settings.broker_url, task_cls="shared.redelivery:BoundedTask"
    )
    transport_options: dict[str, Any] = {}
    if settings.broker_url.startswith("sqla+"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        _use_fast_embedded_polling()
    elif settings.broker_url.startswith(("redis", "rediss")):
        transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS}
        if settings.broker_url.startswith("redis://"):  # (rediss: kombu's own, which turns
            app.conf.broker_transport = broker.TRANSPORT  # on TLS by the transport's name)
    app.conf.update(
        task_queues=[KombuQueue(queue.value, routing_key=queue.value) for queue in Queue],
        task_default_queue=Queue.maintenance.value,
        task_routes={name: {"queue": queue.value} for name, queue in ROUTES.items()},
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_pool_limit=10,
        beat_schedule=BEAT_SCHEDULE,
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
        imports=[
            "services.matcher.tasks",
            "services.notifier.tasks",
            "services.notifier.capacity",
            "services.worker_signals",
        ],
        timezone="UTC",
    )
    return app


celery_app = make_celery(get_settings())
