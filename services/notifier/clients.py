"""httpx clients shared by a worker process: one per endpoint, each with a few connections.

One client for everything would put every request through one connection pool, and httpx pools
get slow as they grow (encode/httpx#3215); one small pool per endpoint also means a receiver
that hangs only ever holds its own connections.
"""

from __future__ import annotations

import base64
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import httpcore
import httpx

from services.notifier.guard import Resolver, guarded_transport, pool_of, system_resolver
from services.notifier.ledger import SENDING_PER_ENDPOINT
from shared.config import get_settings

# As many as a process sends one endpoint at once, so no request waits for a connection.
CONNECTIONS_PER_ENDPOINT = SENDING_PER_ENDPOINT
MOST_CLIENTS = 256  # beyond this, the oldest clients are closed
MOST_TARGETS = 16  # parsed URLs a client keeps

_lock = threading.Lock()
_clients: OrderedDict[tuple[str, str], WebhookClient] = OrderedDict()


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint URL as the connection pool takes it, parsed once: the request target, its
    Host header, and credentials in the URL (`https://user:secret@host/...`) as Basic auth."""

    url: httpcore.URL
    host: bytes
    authorization: bytes | None

    @classmethod
    def of(cls, url: str) -> Target:
        parsed = httpx.URL(url)
        authorization = None
        if parsed.username or parsed.password:
            basic = base64.b64encode(f"{parsed.username}:{parsed.password}".encode())
            authorization = b"Basic " + basic
        if not parsed.host:  # (as httpx refuses it; the API only takes URLs with a host)
            raise httpcore.UnsupportedProtocol(f"no host to send to in {url!r}")
        # (the Host header as httpx writes it: the port only when not the scheme's default)
        host = parsed.netloc
        target = httpcore.URL(
            scheme=parsed.raw_scheme, host=parsed.raw_host, port=parsed.port, target=parsed.raw_path
        )
        return cls(target, host, authorization)


class WebhookClient(httpx.Client):
    """An httpx client whose webhook posts go straight to its transport's connection pool
    (httpcore, the engine under every httpx client; h11 on the wire). A webhook uses none of
    the layers above it: the Client's cookies, redirects, default headers and event hooks,
    nor the transport's translation of each request and answer into httpx's own types, which
    together cost about a third of the CPU of a small POST on a warm connection. What those
    layers would add to a webhook is added here: the Host and Content-Length headers, and
    credentials in the endpoint's URL as Basic auth. Other requests (`post`, ...) go through
    httpx as usual, over the same connections."""

    def __init__(self, transport: httpx.HTTPTransport, timeout: float) -> None:
        timeouts = httpx.Timeout(timeout)
        super().__init__(
            transport=transport, timeout=timeouts, follow_redirects=False, trust_env=False
        )
        self.webhook_pool = pool_of(transport)
        self.webhook_timeouts = timeouts.as_dict()
        self._targets: dict[str, Target] = {}  # parsed once: an endpoint has one URL

    def _target(self, url: str) -> Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= MOST_TARGETS:  # (a URL edited again and again)
                self._targets.clear()
            target = self._targets[url] = Target.of(url)
        return target

    def post_webhook(self, url: str, body: bytes, headers: dict[str, str]) -> httpcore.Response:
        """POST once; the caller reads and closes the answer. Redirects are answers, never
        followed (a connection pool does not follow them). Failures raise httpcore's errors
        (ConnectError, ReadTimeout, ...), or DestinationRefused from the guard."""
        if self.is_closed:  # (as Client.send: a client evicted meanwhile opens nothing new)
            raise RuntimeError("this webhook client has been closed")
        target = self._target(url)
        lines = [(b"Host", target.host)]  # (in httpx's order and casing)
        lines += [(name.encode(), value.encode()) for name, value in headers.items()]
        if target.authorization is not None:
            lines.append((b"authorization", target.authorization))
        lines.append((b"Content-Length", b"%d" % len(body)))
        request = httpcore.Request(
            b"POST",
            target.url,
            headers=lines,
            content=body,
            extensions={"timeout": self.webhook_timeouts},
        )
        return self.webhook_pool.handle_request(request)


def new_client(
    *,
    allow_private: bool,
    allow_loopback: bool,
    timeout: float,
    resolver: Resolver = system_resolver,
    connector: httpcore.NetworkBackend | None = None,
) -> WebhookClient:
    """A client that never follows redirects and connects only through the guard (tests replace
    the resolver and the connector to probe addresses off this machine without reaching them)."""
    transport = guarded_transport(
        allow_private=allow_private,
        allow_loopback=allow_loopback,
        resolver=resolver,
        connector=connector,
        max_connections=CONNECTIONS_PER_ENDPOINT,
    )
    return WebhookClient(transport, timeout)


def client_for(endpoint_id: str, url: str) -> WebhookClient:
    """This process's client for the endpoint (a changed URL origin gets a fresh one). Found
    without a lock, since every request asks; the lock only guards making one."""
    key = (endpoint_id, "/".join(url.split("/", 3)[:3]))  # the endpoint and its origin
    found = _clients.get(key)
    if found is not None:
        return found
    with _lock:
        found = _clients.get(key)
        if found is not None:
            return found
        settings = get_settings()
        client = new_client(
            allow_private=settings.allow_private_webhook_targets,
            allow_loopback=settings.allow_loopback_webhook_targets,
            timeout=settings.webhook_timeout_seconds,
        )
        _clients[key] = client
        while len(_clients) > MOST_CLIENTS:  # the oldest made goes (it reconnects if needed)
            _, oldest = _clients.popitem(last=False)
            oldest.close()
        return client


def close_all() -> None:
    """Close every client of this process."""
    with _lock:
        while _clients:
            _, client = _clients.popitem()
            client.close()


def _forget_after_fork() -> None:
    # Connections and locks do not survive fork(); a child starts with no clients.
    global _lock
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
