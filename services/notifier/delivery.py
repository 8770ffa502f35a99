"""Standard Webhooks on the wire: sign, POST once, classify the answer, schedule the retry."""

from __future__ import annotations

import base64
import hmac
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import TYPE_CHECKING, cast

import httpcore
import httpx
import orjson

from services.notifier.guard import DestinationRefused, deadline

if TYPE_CHECKING:
    from services.notifier.clients import WebhookClient

# After the first try: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about 3 days in all).
RETRY_DELAYS = tuple(
    timedelta(seconds=seconds)
    for seconds in (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1  # each delay is stretched or shrunk by up to 10%, so retries do not stampede
LONGEST_RETRY_AFTER = RETRY_DELAYS[-1]
BODY_KEPT = 200  # characters of a failing receiver's answer kept in the attempt's error
BODY_READ_LIMIT = 64 * 1024  # never read more of an answer than this
SECRET_PREFIX = "whsec_"  # noqa: S105 (the scheme's marker, not a secret)


@dataclass(frozen=True, slots=True)
class Message:
    """One signed request: the same webhook-id on every attempt, signed at the attempt's time."""

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
    final: bool = False  # no retry would help (a refused destination)


@lru_cache(maxsize=1024)
def _keyed(secret: str) -> hmac.HMAC:
    """HMAC-SHA256 keyed with a `whsec_` secret (its base64 part, decoded), copied for each
    message: keying costs four times the hashing of a whole body."""
    # (padding added as the official package adds it, for unpadded base64; extra is ignored)
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX) + "==")
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return hmac.new(key, digestmod="sha256")


def _signature(secret: str, signed: bytes) -> str:
    keyed = _keyed(secret).copy()
    keyed.update(signed)
    return "v1," + base64.b64encode(keyed.digest()).decode()


def sign(*, secrets: list[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The webhook-signature header: one `v1,` signature per active secret, space-separated:
    base64 HMAC-SHA256 of `id.timestamp.body` (Standard Webhooks; the tests verify it with the
    official package, whose signer costs several times more per message)."""
    signed = b"%s.%d.%s" % (msg_id.encode(), int(timestamp.timestamp()), body)
    return " ".join(_signature(secret, signed) for secret in secrets)


def body_of(*, event_type: str, occurred_at: datetime, data: object) -> bytes:
    """The payload `{"type", "timestamp", "data"}`; timestamp is when the event happened."""
    return orjson.dumps({"type": event_type, "timestamp": occurred_at.isoformat(), "data": data})


def build_message(*, msg_id: str, body: bytes, secrets: list[str], signed_at: datetime) -> Message:
    """Standard Webhooks headers for one attempt (receivers reject stale timestamps, so each
    attempt is signed at its own time; the webhook-id never changes)."""
    signed_at = signed_at.replace(microsecond=0)
    headers = {
        "content-type": "application/json",
        "user-agent": "housingfirst-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": sign(secrets=secrets, msg_id=msg_id, timestamp=signed_at, body=body),
    }
    return Message(msg_id=msg_id, timestamp=signed_at, body=body, headers=headers)


def retry_after(response: httpx.Response, now: datetime) -> timedelta | None:
    """The receiver's Retry-After (seconds or an HTTP date), at most a day; None if absent."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            wait = parsedate_to_datetime(value) - now
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(wait, timedelta(0)), LONGEST_RETRY_AFTER)


def _answer(response: httpx.Response) -> str:
    """The start of the receiver's answer (reading no more than BODY_READ_LIMIT of it)."""
    read = bytearray()
    for chunk in response.iter_bytes():
        read += chunk
        if len(read) >= BODY_READ_LIMIT:
            break
    return read[:BODY_KEPT].decode(errors="replace").strip()


def _drain(stream: Iterable[bytes]) -> None:
    """Read a 2xx's answer to its end (no more than BODY_READ_LIMIT of it), as it came: nothing
    of it is kept, so it is not decoded."""
    read = 0
    for chunk in stream:
        read += len(chunk)
        if read >= BODY_READ_LIMIT:
            break


class _Answer(httpx.SyncByteStream):
    """An answer's body as httpx reads it (decoded as its headers say)."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        yield from self.stream


def classify(answered: httpcore.Response, *, now: datetime, elapsed: float) -> Outcome:
    """2xx delivered; 410 disables the endpoint; 429 and 503 say when to come back; any other
    answer (redirects included: never followed) is retried on the schedule. The answer is read
    (a failure's start kept), so the connection is kept for the next request. A 2xx, the usual
    answer, is read straight off the connection; any other as an httpx response (its headers
    parsed, its body decoded)."""
    status = answered.status
    stream = cast(Iterable[bytes], answered.stream)
    if 200 <= status < 300:
        _drain(stream)
        return Outcome(True, status, None, elapsed)
    response = httpx.Response(status, headers=answered.headers, stream=_Answer(stream))
    answer = _answer(response)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return Outcome(False, status, f"HTTP {status}: redirect to {where} not followed", elapsed)
    error = f"HTTP {status}: {answer}" if answer else f"HTTP {status}"
    if status == 410:
        return Outcome(False, status, error, elapsed, disable_endpoint=True)
    wait = retry_after(response, now) if status in (429, 503) else None
    return Outcome(False, status, error, elapsed, retry_after=wait)


# What a failed request raises: httpcore's errors (a timeout is told apart, below), httpx's
# while a failure's answer is decoded, and an endpoint URL that cannot be parsed.
FAILURES = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


def send(
    message: Message, url: str, *, http: WebhookClient, timeout: float, now: datetime
) -> Outcome:
    """POST once within `timeout` seconds in all, and classify what happened."""
    started = time.perf_counter()
    try:
        with deadline(timeout):
            answered = http.post_webhook(url, message.body, message.headers)
            try:
                return classify(answered, now=now, elapsed=time.perf_counter() - started)
            finally:
                answered.close()
    except DestinationRefused as error:
        return Outcome(False, None, str(error), time.perf_counter() - started, final=True)
    except (httpx.TimeoutException, httpcore.TimeoutException):
        return Outcome(False, None, f"timed out after {timeout:g} s", time.perf_counter() - started)
    except FAILURES as error:
        text = f"{type(error).__name__}: {error}"
        return Outcome(False, None, text, time.perf_counter() - started)


def next_attempt_at(*, attempts: int, now: datetime, outcome: Outcome) -> datetime | None:
    """When to try again after `attempts` tries, or None when the delivery is dead."""
    if attempts >= MAX_ATTEMPTS or outcome.disable_endpoint or outcome.final:
        return None
    delay = RETRY_DELAYS[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    if outcome.retry_after is not None:
        delay = max(delay, outcome.retry_after)
    return now + delay
