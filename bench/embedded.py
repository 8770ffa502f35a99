"""The embedded default (`housingfirst up`: SQLite and the serverless broker): intake rate at
64 connections and end-to-end p50 at a steady rate. Goal: >= 300 req/s, p50 <= 250 ms."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench import end_to_end
from bench.common import median, spread, table
from bench.intake import COLUMNS
from bench.load import closed_loop
from bench.stack import embedded_stack, referral

RUNS = 3
SECONDS = 6.0
E2E_RATE = 20.0
E2E_SECONDS = 10.0


def main() -> list[tuple[str, ...]]:
    folder = tempfile.TemporaryDirectory(prefix="hf-bench-embedded-", ignore_cleanup_errors=True)
    with folder as base, embedded_stack(Path(base)) as (stack, api):
        assert stack.keys is not None
        outreach = stack.keys.outreach
        stack.settle()
        # End to end first: the intake runs leave a thousand people waiting (no homes are
        # added for them), who would rank before the later referrals for every new unit.
        with end_to_end.receiving(stack, api) as receiver:
            e2e = end_to_end.measure(
                stack, api, receiver, rate=E2E_RATE, seconds=E2E_SECONDS, runs=1
            )
        p50, missing = e2e.p50, e2e.missing
        rates = []
        for _ in range(RUNS):
            result = closed_loop(api, lambda n: referral(n, outreach), expect=201, seconds=SECONDS)
            rates.append(result.rate)
    rows: list[tuple[str, ...]] = [
        ("embedded intake req/s (housingfirst up, 64 conns)", f"{median(rates):,.0f}",
         spread(rates), "-", "-", ">= 300/s", "yes" if median(rates) >= 300 else "no"),
        (f"embedded end to end p50 at {E2E_RATE:.0f}/s (ms)", f"{median(p50):.0f}", spread(p50),
         f"{missing} missing", "-", "<= 250 ms", "yes" if median(p50) <= 250 and not missing
         else "no"),
    ]  # fmt: skip
    table("Embedded default (SQLite + serverless broker)", rows, COLUMNS)
    return rows


if __name__ == "__main__":
    main()
