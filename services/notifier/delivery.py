"""Standard Webhooks delivery: sign, send with httpx, record the attempt, schedule the retry."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache

import httpx
import orjson
from standardwebhooks import Webhook

from services.notifier.guard import DestinationRefused, guarded_transport
from shared.config import get_settings

TIMEOUT_SECONDS = 15.0
# Standard Webhooks schedule after the first try: 5 s, 5 m, 30 m, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
RETRY_DELAYS = tuple(
    timedelta(seconds=seconds)
    for seconds in (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 425, 429})


@dataclass(frozen=True, slots=True)
class Message:
    """One signed webhook request (the same id and timestamp on every attempt)."""

    msg_id: str
    timestamp: datetime
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened on one attempt."""

    ok: bool
    status_code: int | None
    error: str | None
    duration_seconds: float
    retry_after: timedelta | None = None
    disable_endpoint: bool = False
    permanent: bool = False


def sign(*, secrets: list[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The webhook-signature header: one `v1,` signature per active secret."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(msg_id, timestamp, text) for secret in secrets)


def build_message(
    *, msg_id: str, event_type: str, timestamp: datetime, data: object, secrets: list[str]
) -> Message:
    """The body `{"type", "timestamp", "data"}` and its Standard Webhooks headers."""
    body = orjson.dumps({"type": event_type, "timestamp": timestamp.isoformat(), "data": data})
    headers = {
        "content-type": "application/json",
        "user-agent": "housingfirst-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": sign(secrets=secrets, msg_id=msg_id, timestamp=timestamp, body=body),
    }
    return Message(msg_id=msg_id, timestamp=timestamp, body=body, headers=headers)


@lru_cache
def client() -> httpx.Client:
    """One client per worker process, a few connections, never following redirects."""
    settings = get_settings()
    return httpx.Client(
        transport=guarded_transport(
            allow_private=settings.allow_private_webhook_targets,
            allow_loopback=settings.allow_loopback_webhook_targets,
            max_connections=8,
        ),
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,
    )


def retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    """The receiver's Retry-After (seconds or HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return timedelta(seconds=int(value.strip()))
    try:
        return max(parsedate_to_datetime(value) - now, timedelta(0))
    except (TypeError, ValueError):
        return None


def send(message: Message, url: str, *, now: datetime, http: httpx.Client | None = None) -> Outcome:
    """POST once and classify the answer."""
    started = time.perf_counter()
    try:
        response = (http or client()).post(url, content=message.body, headers=message.headers)
    except DestinationRefused as error:
        return Outcome(False, None, str(error), time.perf_counter() - started, permanent=True)
    except httpx.TimeoutException:
        return Outcome(False, None, "timed out", time.perf_counter() - started)
    except httpx.HTTPError as error:
        return Outcome(
            False, None, f"{type(error).__name__}: {error}", time.perf_counter() - started
        )
    elapsed = time.perf_counter() - started
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(True, status, None, elapsed)
    if 300 <= status < 400:
        return Outcome(False, status, "redirect not followed", elapsed)
    if status == 410:
        return Outcome(False, status, "gone: endpoint disabled", elapsed, disable_endpoint=True)
    wait = retry_after(response, now) if status in (429, 503) else None
    permanent = 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS
    return Outcome(False, status, f"HTTP {status}", elapsed, retry_after=wait, permanent=permanent)


def next_attempt_at(*, attempts: int, now: datetime, outcome: Outcome) -> datetime | None:
    """When to try again after `attempts` tries, or None when the delivery is dead."""
    if attempts >= MAX_ATTEMPTS or outcome.disable_endpoint:
        return None
    delay = RETRY_DELAYS[attempts - 1]
    jittered = delay * random.uniform(0.9, 1.1)
    if outcome.retry_after is not None:
        jittered = max(jittered, outcome.retry_after)
    return now + jittered
