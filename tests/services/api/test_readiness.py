"""GET /readyz answers 503 naming what is down."""

import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from servers import free_port
from services.api.app import create_app
from shared.config import Settings


def test_readyz_names_the_database_when_it_is_down(tmp_path: Path) -> None:
    closed = free_port()
    settings = Settings(
        database_url=f"postgresql://nobody@127.0.0.1:{closed}/none", data_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "database" in response.json()["detail"]


def test_readyz_names_the_broker_when_it_is_down(tmp_path: Path, sqlite_url: str) -> None:
    """A real API process whose Redis is not listening (nothing runs on that loopback port)."""
    from processes import environment, processes

    env = environment(
        database_url=sqlite_url,
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
        data_dir=str(tmp_path),
    )
    port = free_port()
    with processes(env, tmp_path) as group:
        group.start("api", ["api", "--port", str(port)])
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, group.logs()
                time.sleep(0.2)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Unreachable: broker."
