"""The throwaway-server helpers start real PostgreSQL and Redis and stop them by pid."""

from __future__ import annotations

from pathlib import Path

import psycopg
import redis

from servers import create_database, pid_alive, start_postgres, start_redis


def test_postgres_starts_answers_and_stops(tmp_path: Path) -> None:
    server = start_postgres(tmp_path)
    try:
        assert server.url.endswith("/housingfirst")
        assert pid_alive(server.pid)
        with psycopg.connect(server.url) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        other = create_database(server.url, "isolated_db")
        assert other.endswith("/isolated_db")
        with psycopg.connect(other) as conn:
            assert conn.execute("select current_database()").fetchone() == ("isolated_db",)
    finally:
        server.stop()
    assert not pid_alive(server.pid)


def test_redis_starts_answers_restarts_and_stops(tmp_path: Path) -> None:
    server = start_redis(tmp_path)
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.set("kept", "1")
        first = server.pid
        server.restart(keep_data=True)
        assert not pid_alive(first)
        assert client.get("kept") == b"1"
        server.restart(keep_data=False)
        assert client.get("kept") is None
    finally:
        server.stop()
    assert not pid_alive(server.pid)
