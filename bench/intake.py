"""Intake: POST /v1/referrals (key, idempotency, audit, outbox, publish) under 2 uvicorn
workers and 64 connections, beside a naive route inserting the same body with an ORM
AsyncSession under the same workers and pool; runs alternate. Goal: >= 1.2x, p99 < 100 ms.

The events are published to Redis but no worker consumes them during the runs: this measures
intake, as the naive route measures its insert (end_to_end.py measures the whole path)."""

from __future__ import annotations

from typing import Any

from bench.common import median, spread, table
from bench.load import CONNECTIONS, Result, closed_loop
from bench.stack import Stack, postgres_stack, referral

RUNS = 3
SECONDS = 8.0
COLUMNS = ("measure", "median", "range", "baseline", "ratio", "goal", "met?")


def measure(stack: Stack, api: str, naive: str, *, runs: int = RUNS) -> tuple[list[Result], ...]:
    """Alternating runs: naive, ours, naive, ours, ..."""
    assert stack.keys is not None
    outreach = stack.keys.outreach

    def ours(number: int) -> tuple[str, str, dict[str, str], Any]:
        return referral(number, outreach)

    def theirs(number: int) -> tuple[str, str, dict[str, str], Any]:
        method, _, headers, body = referral(number, {})
        return method, "/naive/referrals", headers, body

    ours_results, naive_results = [], []
    for _ in range(runs):
        naive_results.append(closed_loop(naive, theirs, expect=201, seconds=SECONDS))
        ours_results.append(closed_loop(api, ours, expect=201, seconds=SECONDS))
    return ours_results, naive_results


def rows(ours: list[Result], naive: list[Result]) -> list[tuple[str, ...]]:
    rate, base = [r.rate for r in ours], [r.rate for r in naive]
    p99, base_p99 = (
        [r.percentile(0.99) * 1000 for r in ours],
        [r.percentile(0.99) * 1000 for r in naive],
    )
    ratio = median(rate) / median(base)
    errors = sum(r.unexpected for r in ours) + sum(r.unexpected for r in naive)
    return [
        (
            f"intake req/s (POST /v1/referrals, 2 workers, {CONNECTIONS} conns)",
            f"{median(rate):,.0f}",
            spread(rate),
            f"naive ORM route {median(base):,.0f} ({spread(base)})",
            f"{ratio:.2f}x",
            ">= 1.2x",
            "yes"
            if ratio >= 1.2 and not errors
            else f"no{f' ({errors} errors)' if errors else ''}",
        ),
        (
            "intake p99 latency (ms)",
            f"{median(p99):.0f}",
            spread(p99),
            f"naive p99 {median(base_p99):.0f} ms",
            f"{median(p99) / median(base_p99):.2f}x",
            "< 100 ms",
            "yes" if median(p99) < 100 else "no",
        ),
    ]


def main() -> list[tuple[str, ...]]:
    with postgres_stack() as stack:
        api, naive = stack.api(), stack.naive()
        stack.settle()
        ours, theirs = measure(stack, api, naive)
    result = rows(ours, theirs)
    table("Intake (PostgreSQL + Redis, loopback)", result, COLUMNS)
    return result


if __name__ == "__main__":
    main()
