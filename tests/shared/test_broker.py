"""The Redis transport keeps one redis-py client per channel (shared/broker.py), and messages
still go through it with their acknowledgements, on a real Redis."""

from __future__ import annotations

from pathlib import Path

from kombu import Queue as KombuQueue

from shared.broker import TRANSPORT, Channel
from shared.config import Settings
from shared.queue import make_celery


def test_a_channel_keeps_one_client_until_its_pool_changes(redis_url: str, tmp_path: Path) -> None:
    app = make_celery(Settings(broker_url=redis_url, data_dir=tmp_path))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        with channel.conn_or_acquire() as first:
            assert first.ping()
        with channel.conn_or_acquire() as again:
            assert again is first
        # when the channel replaces its pool (as after a fork)
        channel._disconnect_pools()
        with channel.conn_or_acquire() as fresh:
            assert fresh is not first and fresh.ping()


def test_messages_are_delivered_and_acknowledged_through_it(redis_url: str, tmp_path: Path) -> None:
    app = make_celery(Settings(broker_url=redis_url, data_dir=tmp_path))
    queue = KombuQueue("broker-test", routing_key="broker-test")
    with app.connection_for_write() as connection:
        simple = connection.SimpleQueue(queue)
        for number in range(3):
            simple.put({"n": number})
        received, tags = [], []
        for _ in range(3):
            message = simple.get(timeout=5)
            received.append(message.payload["n"])
            tags.append(message.delivery_tag)
            message.ack()
        assert received == [0, 1, 2]
        # none is left unacknowledged for Redis to restore later
        with connection.default_channel.conn_or_acquire() as client:
            assert not any(client.hexists("unacked", tag) for tag in tags)
        simple.close()


def test_tls_urls_keep_kombus_own_transport(tmp_path: Path) -> None:
    # (kombu turns on TLS for a rediss:// URL by the transport's name)
    plain = make_celery(Settings(broker_url="redis://127.0.0.1:6379/0", data_dir=tmp_path))
    assert plain.connection_for_write().transport_cls == TRANSPORT
    tls = make_celery(Settings(broker_url="rediss://127.0.0.1:6380/0", data_dir=tmp_path))
    connection = tls.connection_for_write()
    assert connection.transport_cls == "rediss" and connection.ssl
