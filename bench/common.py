"""Helpers for benchmarks: servers on loopback, medians, and a printed table."""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL/Redis starters live there

from servers import start_postgres  # noqa: E402

console = Console(width=200)  # wide enough that no figure is cut


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port (HOUSINGFIRST_BENCH_POSTGRES_URL to reuse)."""
    import os

    given = os.environ.get("HOUSINGFIRST_BENCH_POSTGRES_URL")
    if given:
        yield given
        return
    server = start_postgres(Path(tempfile.mkdtemp(prefix="hf-bench-")))
    try:
        yield server.url
    finally:
        server.stop()


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}..{max(values):.3g}"


def table(title: str, rows: list[tuple[str, ...]], columns: tuple[str, ...]) -> None:
    """Print a result table."""
    result = Table(title=title)
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*row)
    console.print(result)
