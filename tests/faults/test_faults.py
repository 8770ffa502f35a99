"""Fault injection with real processes (DESIGN.md 5-6): the short version runs in `make test`;
`make faults` runs the full one (10,000 referrals, Redis down 60 s). Both print the summary."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fault_scenarios import FULL, SHORT, Run
from fault_stack import FaultStack
from rich.console import Console
from rich.table import Table

PROFILE = FULL if os.environ.get("HOUSINGFIRST_FAULTS") == "full" else SHORT


def summary(rows: list[tuple[str, str, str, str]], title: str) -> None:
    table = Table(title=title, show_lines=True)
    for column in ("scenario", "load", "faults injected", "result"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


@pytest.mark.timeout(2700 if PROFILE is FULL else 300)
def test_nothing_is_lost_when_things_break(tmp_path: Path) -> None:
    started = time.monotonic()
    stack = FaultStack(base=tmp_path, unfinished_after_seconds=PROFILE.unfinished_after_seconds)
    try:
        stack.start()
        run = Run(stack, PROFILE)
        try:
            rows = run.everything(os.environ.get("HOUSINGFIRST_FAULTS_ONLY", ""))
        finally:
            run.clients.close()
    finally:
        stack.stop()
    minutes = (time.monotonic() - started) / 60
    summary(rows, f"Faults ({PROFILE.name} version, {minutes:.1f} min)")
