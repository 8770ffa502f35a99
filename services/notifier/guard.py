"""Refuse webhook destinations outside the public internet at connect time, after DNS resolution,
and hold every attempt to one whole-request deadline."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_deadline: ContextVar[float | None] = ContextVar("webhook_deadline", default=None)


class DestinationRefused(httpx.TransportError):
    """The destination resolves to an address webhooks may not reach."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host resolves to, in the system's order of preference."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip(address: str) -> Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def is_loopback(address: str) -> bool:
    return _ip(address).is_loopback


def refusal(address: str) -> str | None:
    """Why an address is not a public destination, or None when it is."""
    ip = _ip(address)
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),  # 0.0.0.0 and :: reach this machine
        ("link-local", ip.is_link_local),  # 169.254.169.254: cloud metadata
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{address} is a {kind} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Every network operation inside shares one deadline (httpx's timeouts are per operation,
    so a receiver trickling one byte at a time would otherwise never time out)."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    end = _deadline.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the webhook attempt ran out of time")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose reads and writes never outlast the current attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Resolves the host itself, vets every address, then connects only to a vetted address:
    nothing resolves the name a second time, so DNS rebinding cannot swap the address."""

    def __init__(
        self,
        *,
        allow_private: bool,
        allow_loopback: bool = False,
        resolver: Resolver = system_resolver,
        connector: httpcore.NetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.resolver = resolver
        self.connector = connector or httpcore.SyncBackend()

    def vet(self, host: str, addresses: list[str]) -> None:
        """Raise DestinationRefused unless every address may be reached."""
        if self.allow_private:
            return
        reasons = [
            reason
            for address in addresses
            if (reason := refusal(address)) and not (self.allow_loopback and is_loopback(address))
        ]
        if reasons:
            raise DestinationRefused(f"refused {host}: {'; '.join(reasons)}")

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        self.vet(host, addresses)
        failure: Exception | None = None
        for address in addresses:
            try:
                stream = self.connector.connect_tcp(
                    address,
                    port,
                    timeout=_left(timeout, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
                continue
            return DeadlineStream(stream)
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise DestinationRefused("webhooks never go to unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def guarded_transport(
    *,
    allow_private: bool,
    allow_loopback: bool = False,
    resolver: Resolver = system_resolver,
    connector: httpcore.NetworkBackend | None = None,
    max_connections: int = 4,
) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through the guard.

    httpx 0.28 has no public way to give HTTPTransport a network backend, so its pool is
    replaced by an identical one built on the guard (the assertion catches an httpx change).
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport = httpx.HTTPTransport(limits=limits)
    assert isinstance(transport._pool, httpcore.ConnectionPool)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=transport._pool._ssl_context,
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        network_backend=GuardedBackend(
            allow_private=allow_private,
            allow_loopback=allow_loopback,
            resolver=resolver,
            connector=connector,
        ),
    )
    return transport


def pool_of(transport: httpx.HTTPTransport) -> httpcore.ConnectionPool:
    """The transport's connection pool (guarded_transport's, for a guarded one)."""
    pool = transport._pool
    assert isinstance(pool, httpcore.ConnectionPool)
    return pool
