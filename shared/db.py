"""Engines and session factories, sync (workers) and async (API), from one database URL."""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from shared.config import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000

# These log statement parameters (names, dates of birth) at DEBUG: never let them, whatever
# the configured level. Personal data must not reach the logs.
for _leaky in ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.pool"):
    logging.getLogger(_leaky).setLevel(logging.WARNING)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


JSON_OPTIONS: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def driver_url(url: str, *, asynchronous: bool) -> URL:
    """The SQLAlchemy URL with the driver chosen from the scheme (psycopg 3, sqlite3, aiosqlite)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite" if asynchronous else "sqlite+pysqlite")
    raise ValueError(f"unsupported database scheme: {parsed.drivername}")


def _prepare_sqlite(sync_engine: Engine, url: URL) -> None:
    """WAL, a busy timeout, foreign keys, BEGIN IMMEDIATE: writers queue instead of failing."""
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _prepare_postgres(sync_engine: Engine) -> None:
    """Lists (the arrays of ids and columns bulk statements take) go in binary: psycopg's text
    array dumper costs about a microsecond per element in Python, five times the binary one,
    and claims and records pass every delivery's id several times. A list of strings goes as
    text[]: a statement taking one casts it (typed ARRAY bind parameters render the cast)."""

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        driver.adapters.register_dumper(list, ListBinaryDumper)


# Every sync engine of this process. A forked child (a Celery pool process, started again after
# one dies) must never use a connection its parent holds: two processes on one socket corrupt
# each other's transactions ("connection in transaction status INTRANS").
_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)  # the parent keeps its connections; the child opens its own


os.register_at_fork(after_in_child=_forget_parent_connections)


def make_engine(url: str, **options: Any) -> Engine:
    """A sync engine for workers and tools."""
    target = driver_url(url, asynchronous=False)
    options = {**JSON_OPTIONS, **options}
    if target.get_backend_name() == "sqlite":
        engine = create_engine(target, connect_args={"timeout": 30}, **options)
        _prepare_sqlite(engine, target)
    else:
        options.setdefault("pool_pre_ping", True)
        engine = create_engine(target, **options)
        _prepare_postgres(engine)
    _engines.add(engine)
    return engine


def make_async_engine(url: str, **options: Any) -> AsyncEngine:
    """An async engine for the API."""
    target = driver_url(url, asynchronous=True)
    options = {**JSON_OPTIONS, **options}
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(target, connect_args={"timeout": 30}, **options)
        _prepare_sqlite(engine.sync_engine, target)
        return engine
    options.setdefault("pool_pre_ping", True)
    # A connection for each request a worker serves at once under load (64 connections over 2
    # workers in the benchmarks): below that, overflow connections are opened and closed on
    # every burst, which cost a third of the intake rate. PostgreSQL is given room for it
    # (docker-compose.yml: max_connections).
    options.setdefault("pool_size", 32)
    options.setdefault("max_overflow", 8)
    engine = create_async_engine(target, **options)
    _prepare_postgres(engine.sync_engine)
    return engine


def is_postgres(engine: Engine | AsyncEngine | Connection) -> bool:
    """True on PostgreSQL (advisory locks, SKIP LOCKED)."""
    return engine.dialect.name == "postgresql"


@lru_cache
def get_engine() -> Engine:
    """The process's sync engine for the configured database."""
    return make_engine(get_settings().database_url)


@lru_cache
def get_session_factory() -> sessionmaker[Session]:
    """Sync sessions; the caller (a task wrapper) commits."""
    return sessionmaker(get_engine(), expire_on_commit=False)


def make_async_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    """Async sessions for the API; the request boundary commits."""
    return async_sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session] | None = None) -> Iterator[Session]:
    """Open a session, commit on success, roll back on error: the only place workers commit."""
    session = (factory or get_session_factory())()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
