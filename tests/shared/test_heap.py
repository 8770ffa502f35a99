"""shared/heap.py: what start-up built leaves the collections; a matching round runs without
automatic collections, which resume after it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.matcher import rounds
from shared.heap import collections_paused


@pytest.fixture(autouse=True)
def collections_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_collections_pause_and_resume() -> None:
    with collections_paused():
        assert not gc.isenabled()
        with collections_paused():  # nested: the outer one resumes them
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_collections_resume_after_a_failure() -> None:
    with pytest.raises(RuntimeError), collections_paused():
        raise RuntimeError("the round failed")
    assert gc.isenabled()


def test_a_round_runs_without_automatic_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []

    def load_units(*_: object) -> list[object]:
        seen.append(gc.isenabled())
        raise LookupError("stop here")

    monkeypatch.setattr(rounds, "load_units", load_units)
    with pytest.raises(LookupError):
        rounds.run_round(None, "north", now=None, ttl_hours=72)  # type: ignore[arg-type]
    assert seen == [False] and gc.isenabled()
