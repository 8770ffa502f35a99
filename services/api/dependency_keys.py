"""FastAPI works out each dependency's cache key on every request: it unwraps the callable and
walks the dependency's sub-dependencies looking for security scopes. The key depends only on
the dependency as declared, which a route builds once, so it is remembered here per
declaration; under load this was a tenth of an intake's CPU (py-spy, `make bench` intake).

`fastapi.dependencies.utils._get_cache_key` is private: if a FastAPI release renames it, this
does nothing and FastAPI computes the keys as before (tests/services/api/test_dependency_keys.py
then fails, as a reminder)."""

from __future__ import annotations

from typing import Any

from fastapi.dependencies import utils

MOST_REMEMBERED = 10_000  # declarations (routes build a few dozen; bounded all the same)
_original = getattr(utils, "_get_cache_key", None)
_remembered: dict[int, tuple[Any, Any]] = {}  # id of the declaration -> (it, its key)


def _cache_key(*, dependant: Any, **options: Any) -> Any:
    found = _remembered.get(id(dependant))
    if found is not None and found[0] is dependant:  # (holding it keeps its id unique)
        return found[1]
    assert _original is not None
    key = _original(dependant=dependant, **options)
    if len(_remembered) < MOST_REMEMBERED:
        _remembered[id(dependant)] = (dependant, key)
    return key


def remember_dependency_keys() -> bool:
    """Install the memo (once); False if this FastAPI has no such function."""
    if _original is None:
        return False
    setattr(utils, "_get_cache_key", _cache_key)  # noqa: B010  (a private name)
    return True
