"""Each dependency's cache key is worked out once per declaration, not on every request
(services/api/dependency_keys.py), and is the key FastAPI itself would compute."""

from pathlib import Path

from fastapi.dependencies import utils
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.api import dependency_keys
from services.api.app import create_app
from shared.config import Settings


def test_the_keys_are_remembered_and_the_same_as_fastapis(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert dependency_keys.remember_dependency_keys()  # (this FastAPI still has the function)
    assert getattr(utils, "_get_cache_key") is dependency_keys._cache_key  # noqa: B009
    original = dependency_keys._original
    assert original is not None
    checked = 0
    routes = list(app.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # (a router included in the app)
        if included is not None:
            routes += included.routes
        if not isinstance(route, APIRoute):
            continue
        pending = list(route.dependant.dependencies)
        while pending:
            dependant = pending.pop()
            pending += dependant.dependencies
            first = dependency_keys._cache_key(dependant=dependant)
            assert first == original(dependant=dependant)
            assert dependency_keys._cache_key(dependant=dependant) is first  # remembered
            checked += 1
    assert checked > 50
    # and a request through the app uses the remembered keys (its dependencies still solved)
    with TestClient(app) as client:
        response = client.get("/v1/referrals", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 401
    assert all(
        key == original(dependant=dependant)
        for dependant, key in dependency_keys._remembered.values()
    )
