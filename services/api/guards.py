"""Request guards as plain ASGI middleware: body size limit, per-key rate limit, headers."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"geolocation=(), camera=(), microphone=()"),
]
API_ONLY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
PAGES = ("/docs", "/redoc", "/ops")


async def problem(send: Send, status: int, title: str, detail: str, headers: list[Any]) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guards:
    """Refuses bodies over `max_body_bytes` (413) and URLs with a NUL (400), limits each
    key's rate (429 + Retry-After), and adds security headers to every response."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, per_minute: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.per_minute = per_minute
        self.buckets: dict[bytes, tuple[float, float]] = {}

    def _allow(self, key: bytes) -> float:
        """0 if the key may go on now, else seconds until it may."""
        now = time.monotonic()
        rate = self.per_minute / 60
        tokens, stamp = self.buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - stamp) * rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / rate
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 100_000:  # forget idle keys; a full bucket is the default anyway
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 120}
        return 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await problem(
                send,
                413,
                "Content too large",
                f"Request bodies are limited to {self.max_body_bytes} bytes.",
                [],
            )
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            # (no id or filter has one, and PostgreSQL cannot compare text holding one)
            await problem(send, 400, "Bad request", "URLs may not contain NUL (%00).", [])
            return
        authorization = headers.get(b"authorization", b"")
        if authorization:
            key = (
                authorization.split(b"_", 2)[1] if authorization.count(b"_") >= 2 else authorization
            )
            wait = self._allow(key)
            if wait:
                await problem(
                    send,
                    429,
                    "Too many requests",
                    "This API key is sending too fast; retry after the given seconds.",
                    [(b"retry-after", str(math.ceil(wait)).encode())],
                )
                return
        received = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    refused = True
                    await problem(
                        send,
                        413,
                        "Content too large",
                        f"Request bodies are limited to {self.max_body_bytes} bytes.",
                        [],
                    )
                    return {"type": "http.disconnect"}
            return message

        page = scope["path"].startswith(PAGES)

        async def guarded_send(message: Message) -> None:
            if refused:
                return  # the 413 has been sent; whatever the app answers is dropped
            if message["type"] == "http.response.start":
                extra = SECURITY_HEADERS if page else SECURITY_HEADERS + API_ONLY_HEADERS
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
