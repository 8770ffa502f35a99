"""Notifier test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.config import Settings
from support import Stack


@pytest.fixture
def lite_stack(sqlite_url: str) -> Iterator[Stack]:
    """The API in-process on a fresh SQLite database, where the database is incidental."""
    from services.api.app import create_app

    settings = Settings(database_url=sqlite_url)  # the data dir comes from the environment
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield Stack(client=client, database_url=sqlite_url)
