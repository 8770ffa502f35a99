"""`make bench`: every benchmark, each printing its figure beside its baseline.

`python -m bench intake polling` runs a subset, by name."""

import os
import sys
from collections.abc import Callable

from bench import deliveries, embedded, end_to_end, intake, matching, memory, polling
from bench.common import table
from bench.intake import COLUMNS

BENCHES: dict[str, Callable[[], list[tuple[str, ...]]]] = {
    "matching": matching.main,
    "deliveries": deliveries.main,
    "intake": intake.main,
    "end_to_end": end_to_end.main,
    "polling": polling.main,
    "memory": memory.main,
    "embedded": embedded.main,
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHES)
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    rows: list[tuple[str, ...]] = []
    for name in names:
        figures = BENCHES[name]()
        if name not in ("matching", "deliveries"):  # these print their own columns
            rows += figures
    load = os.getloadavg()
    table(f"All ({os.cpu_count()} cores; load average {load[0]:.1f})", rows, COLUMNS)
