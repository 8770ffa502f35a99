"""Helpers for benchmarks: servers on loopback, medians, and a printed table."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL/Redis starters live there

from servers import start_postgres  # noqa: E402

console = Console(width=200)  # wide enough that no figure is cut


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port (HOUSINGFIRST_BENCH_POSTGRES_URL to reuse)."""
    given = os.environ.get("HOUSINGFIRST_BENCH_POSTGRES_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="hf-bench-", ignore_cleanup_errors=True) as base:
        server = start_postgres(Path(base))
        try:
            yield server.url
        finally:
            server.stop()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_seconds(connection: Any) -> float | None:
    """CPU seconds used so far by the PostgreSQL server processes (backends and background
    processes) that pg_stat_activity lists, read from /proc; None if the server is not on this
    machine. A process that ends between two readings is not counted."""
    pids = [row[0] for row in connection.exec_driver_sql("SELECT pid FROM pg_stat_activity")]
    seen = sum(cpu_seconds(pid) for pid in pids)
    return seen if seen else None


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
