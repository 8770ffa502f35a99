"""The Redis transport, with one redis-py client per channel.

kombu's Redis channel makes a new redis-py client for every operation not handed one
(`Channel.conn_or_acquire`): in a worker's main process, each message's bookkeeping on receipt
and again on its ack, and each publish. Making one costs about as much as the commands it sends
(py-spy: a third of a worker main process's CPU). A client is only a handle on the channel's
connection pool, safe to share between threads, so each channel keeps one, made again when the
channel replaces its pool (after a fork or a lost connection).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

# Celery's `broker_transport` for redis:// URLs. Not for rediss://: kombu turns on TLS for a
# URL without ssl parameters only when the transport is named `rediss`.
TRANSPORT = "shared.broker:Transport"


class Channel(kombu_redis.Channel):
    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        channel: Any = self  # (kombu's Redis channel is untyped)
        shared = self._shared_client
        if shared is None or shared.connection_pool is not channel._pool:
            shared = self._shared_client = channel._create_client()
        yield shared


class Transport(kombu_redis.Transport):
    Channel = Channel
