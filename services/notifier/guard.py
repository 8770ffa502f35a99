"""Refuse webhook destinations in private ranges at connect time, after DNS resolution."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

Resolver = Callable[[str, int], list[str]]


class DestinationRefused(httpx.TransportError):
    """The destination resolves to an address webhooks may not reach."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host resolves to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    return _ip(address).is_loopback


def refusal(address: str) -> str | None:
    """Why an address is not a public destination, or None when it is."""
    ip = _ip(address)
    for kind, flag in (
        ("loopback", ip.is_loopback),
        ("private", ip.is_private),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
    ):
        if flag:
            return f"{address} is a {kind} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself, vets every address, then connects to a vetted address."""

    def __init__(
        self,
        *,
        allow_private: bool,
        allow_loopback: bool = False,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.resolver = resolver

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
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self.allow_private:
            reasons = [
                reason
                for address in addresses
                if (reason := refusal(address))
                and not (self.allow_loopback and is_loopback(address))
            ]
            if reasons:
                raise DestinationRefused(f"refused {host}: {'; '.join(reasons)}")
        return super().connect_tcp(
            addresses[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )


def guarded_transport(
    *,
    allow_private: bool,
    allow_loopback: bool = False,
    resolver: Resolver = system_resolver,
    max_connections: int = 4,
) -> httpx.HTTPTransport:
    """An httpx transport whose every connection goes through the guard."""
    transport = httpx.HTTPTransport(
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
    )
    transport._pool = httpcore.ConnectionPool(
        ssl_context=transport._pool._ssl_context,
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        network_backend=GuardedBackend(
            allow_private=allow_private, allow_loopback=allow_loopback, resolver=resolver
        ),
    )
    return transport
