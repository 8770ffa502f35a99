"""Garbage collection in long-running processes: what start-up built stays out of full
collections.

A full (oldest-generation) collection walks every tracked object. An API process holds about
170,000 after start-up (modules, classes, functions, the app, SQLAlchemy's and pydantic's
structures), and under load requests in flight are promoted fast enough to trigger a full
collection every few seconds: each took 100-165 ms on the 2-core bench machine and collected
almost nothing, and every request of the process waited for it (most of the intake's p99).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_startup() -> None:
    """Move every object alive now into the permanent generation, which collections skip. Call
    once start-up has built what lives as long as the process (before a pool forks, the
    children share those pages as well: a collection no longer writes to them)."""
    gc.collect()
    gc.freeze()


@contextmanager
def collections_paused() -> Iterator[None]:
    """No automatic collection while a batch builds many objects that all live until it ends
    (a matching round holds 100,000 people and 10,000 units): each collection would walk them,
    free nothing and promote them, and the full ones came about a third of such a round's time.
    Collections resume after it. (For one batch at a time per process: the matcher's.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
