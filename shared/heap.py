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


def freeze_startup() -> None:
    """Move every object alive now into the permanent generation, which collections skip. Call
    once start-up has built what lives as long as the process (before a pool forks, the
    children share those pages as well: a collection no longer writes to them)."""
    gc.collect()
    gc.freeze()
