"""Test fixtures: real PostgreSQL and Redis (started here unless given), fresh databases."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before any project import: settings are read once per process.
_DATA_DIR = tempfile.mkdtemp(prefix="housingfirst-tests-")
os.environ["HOUSINGFIRST_DATA_DIR"] = _DATA_DIR

import psycopg  # noqa: E402
import pytest  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from servers import create_database, start_postgres, start_redis  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.migrate import upgrade  # noqa: E402
from support import Stack  # noqa: E402

POSTGRES_URL_VARIABLE = "HOUSINGFIRST_TEST_POSTGRES_URL"
REDIS_URL_VARIABLE = "HOUSINGFIRST_TEST_REDIS_URL"
TEMPLATE = "housingfirst_template"


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server URL: the given one, or one started here on loopback and stopped after."""
    given = os.environ.get(POSTGRES_URL_VARIABLE)
    if given:
        yield given
        return
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server URL: the given one, or one started here on loopback and stopped after."""
    given = os.environ.get(REDIS_URL_VARIABLE)
    if given:
        yield given
        return
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A migrated database that fresh test databases are copied from."""
    url = create_database(postgres_server, f"{TEMPLATE}_{os.getpid()}")
    upgrade(url)
    return url


_counter = iter(range(1_000_000))


def fresh_postgres(server_url: str, template_url: str) -> str:
    """A new database copied from the migrated template (fast)."""
    name = f"hf_{os.getpid()}_{next(_counter)}"
    template = template_url.rsplit("/", 1)[1]
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def postgres_url(postgres_server: str, postgres_template: str) -> str:
    """A fresh, migrated PostgreSQL database for one test."""
    return fresh_postgres(postgres_server, postgres_template)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite database for one test."""
    path = tmp_path / "housingfirst.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def stack(database_url: str) -> Iterator[Stack]:
    """The API in-process (real HTTP semantics through TestClient) on a fresh database."""
    from services.api.app import create_app

    settings = Settings(database_url=database_url, data_dir=Path(_DATA_DIR))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Stack(client=client, database_url=database_url)


@pytest.fixture
def pg_stack(postgres_url: str) -> Iterator[Stack]:
    """The API in-process on a fresh PostgreSQL database."""
    from services.api.app import create_app

    settings = Settings(database_url=postgres_url, data_dir=Path(_DATA_DIR))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Stack(client=client, database_url=postgres_url)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_DATA_DIR, ignore_errors=True)
