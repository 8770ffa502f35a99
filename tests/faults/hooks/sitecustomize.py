"""Fault points for tests/faults, in the processes the harness starts (their PYTHONPATH begins
with this folder; nothing else loads it). Each is off unless its variable is set:

- HF_FAULT_KILL_BEFORE_PUBLISH=<file>: an API process SIGKILLs itself after a request's commit
  (and its response) and before the events are published, while <file> holds a budget > 0 (each
  kill takes one); the outbox relay must publish what it left.
- HF_FAULT_POISON_REGION=<region>: a worker process SIGKILLs itself whenever it starts a
  matching round of that region: work that kills its worker every time it runs.
"""

from __future__ import annotations

import fcntl
import importlib.abc
import os
import signal
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _take_budget(path: str) -> bool:
    with Path(path).open("r+") as budget:
        fcntl.flock(budget, fcntl.LOCK_EX)
        left = int(budget.read().strip() or 0)
        if left <= 0:
            return False
        budget.seek(0)
        budget.truncate()
        budget.write(str(left - 1))
        return True


def _kill_before_publish(module: ModuleType) -> None:
    path, publish = os.environ["HF_FAULT_KILL_BEFORE_PUBLISH"], module.publish_events

    async def publish_events(*args: Any, **kwargs: Any) -> Any:
        if _take_budget(path):
            _die()
        return await publish(*args, **kwargs)

    module.publish_events = publish_events


def _poison_region(module: ModuleType) -> None:
    region, round_now = os.environ["HF_FAULT_POISON_REGION"], module.round_now

    def poisoned_round(session: Any, name: str, **kwargs: Any) -> Any:
        if name == region:
            _die()
        return round_now(session, name, **kwargs)

    module.round_now = poisoned_round


PATCHES: dict[str, Callable[[ModuleType], None]] = {}
if os.environ.get("HF_FAULT_KILL_BEFORE_PUBLISH"):
    PATCHES["services.api.publishing"] = _kill_before_publish
if os.environ.get("HF_FAULT_POISON_REGION"):
    PATCHES["services.matcher.regions"] = _poison_region


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds the module as usual and patches it right after it runs."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:

                def exec_module(module: ModuleType, run: Any = spec.loader.exec_module) -> None:
                    run(module)
                    PATCHES[name](module)

                spec.loader.exec_module = exec_module  # type: ignore[method-assign]
                return spec
        return None


if PATCHES:
    sys.meta_path.insert(0, _PatchAfterImport())
