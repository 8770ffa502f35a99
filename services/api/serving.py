"""Several API worker processes on one port, each accepting on a socket of its own.

uvicorn's supervisor binds one socket and every worker accepts from it: the worker that wakes
first takes a whole burst of new connections, and kept-alive connections stay where they
landed, so one worker can serve twice the connections of another (measured here: 42 and 22, 57
and 7, of 64) and its requests wait twice as long. With SO_REUSEPORT each worker listens on a
socket of its own bound to the same address, and the kernel spreads new connections across them
by a hash of their addresses (Linux). uvicorn's supervisor still starts, health-checks, restarts
and stops the workers; only what it hands each worker changes.

What this trades: a worker's queue is its own, so connections waiting in it when the worker
stops (a restart, SIGHUP, SIGTTOU) are reset unless the kernel migrates them
(`net.ipv4.tcp_migrate_req=1`, Linux 5.14 and later); and a worker whose event loop is stuck
still gets its share of new connections (uvicorn's health check answers from a thread), where
with one shared socket the others would take them.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

from uvicorn import Config
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("uvicorn.error")


def _bound(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A socket bound to the address, or a failed start (uvicorn's exit code, which stops its
    supervisor instead of its starting a worker again every half second)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as failure:
        sock.close()
        log.error("Cannot listen on %s:%d: %s", host, port, failure)
        sys.exit(STARTUP_FAILURE)
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to the address with SO_REUSEPORT (uvicorn makes it listen)."""
    return _bound(host, port, reuse_port=True)


class SocketOfItsOwn:
    """What the supervisor hands each worker instead of a shared socket. Workers are spawned,
    so it reaches them pickled: unpickled in the worker, it is a new socket of that worker's."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return listening_socket, (self.host, self.port)


def can_share_port(*, workers: int, port: int) -> bool:
    """Several workers, a fixed port, and a kernel that balances SO_REUSEPORT sockets."""
    return workers > 1 and port != 0 and sys.platform == "linux"  # (others do not balance)


def serve_workers(config: Config) -> None:
    """Run config.workers processes, each listening on a socket of its own."""
    # First a plain bind, so a port that anything else listens on (another instance of this
    # service included, SO_REUSEPORT or not) fails here, as uvicorn's own bind would.
    _bound(config.host, config.port, reuse_port=False).close()
    log.info(
        "Listening on http://%s:%d, %d workers with a socket each (SO_REUSEPORT)",
        config.host,
        config.port,
        config.workers,
    )
    own = SocketOfItsOwn(config.host, config.port)
    Multiprocess(config, sockets=[own]).run()  # type: ignore[list-item]
