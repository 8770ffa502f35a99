"""Structured JSON logs; every line carries the request id and event id in scope, so one
referral can be followed from the API through the matcher to the notifier.

Log records name ids, never people: no names, dates of birth, contacts or free text."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
event_id: ContextVar[str | None] = ContextVar("event_id", default=None)

STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, ids in scope, and extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
            "event_id": event_id.get(),
        }
        line.update(
            {k: v for k, v in vars(record).items() if k not in STANDARD and not k.startswith("_")}
        )
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def dict_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """The same set-up as a logging dictConfig (uvicorn applies it in each worker process)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn.access": {"level": "WARNING"},
            "aiosqlite": {"level": "WARNING"},
            "sqlalchemy.engine": {"level": "WARNING"},
        },
    }


def configure(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr for this process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("celery", "kombu", "amqp"):  # one line per task is ours, not theirs too
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


@contextmanager
def bound(*, request: str | None = None, event: str | None = None) -> Iterator[None]:
    """Put ids in scope for the log lines written inside."""
    tokens = []
    if request is not None:
        tokens.append((request_id, request_id.set(request)))
    if event is not None:
        tokens.append((event_id, event_id.set(event)))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)
