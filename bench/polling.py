"""Polling: GET /v1/availability with If-None-Match answering 304, beside a hello-world
FastAPI route under the same 2 uvicorn workers, alternating. Goal: >= 0.5x."""

from __future__ import annotations

from typing import Any

import httpx

from bench.common import median, spread, table
from bench.intake import COLUMNS
from bench.load import CONNECTIONS, Result, closed_loop
from bench.stack import REGION, Stack, postgres_stack

RUNS = 3
SECONDS = 6.0
UNITS = 20


def add_units(api: str, provider: dict[str, str], count: int = UNITS) -> None:
    with httpx.Client(base_url=api, timeout=30) as http:
        for number in range(count):
            body = {"region": REGION, "area": "riverside", "max_occupants": 2, "bedrooms": 1}
            body |= {"pets_allowed": True, "status": "offline", "reference": f"Flat {number}"}
            assert http.post("/v1/units", json=body, headers=provider).status_code == 201


def measure(stack: Stack, api: str, naive: str, *, runs: int = RUNS) -> tuple[list[Result], ...]:
    assert stack.keys is not None
    provider = stack.keys.provider
    add_units(api, provider)
    path = f"/v1/availability?region={REGION}"
    tag = httpx.get(api + path, headers=provider).headers["etag"]
    headers = {**provider, "If-None-Match": tag}

    def ours(_: int) -> tuple[str, str, dict[str, str], Any]:
        return "GET", path, headers, None

    def hello(_: int) -> tuple[str, str, dict[str, str], Any]:
        return "GET", "/hello", {}, None

    ours_results, base_results = [], []
    for _ in range(runs):
        base_results.append(closed_loop(naive, hello, expect=200, seconds=SECONDS))
        ours_results.append(closed_loop(api, ours, expect=304, seconds=SECONDS))
    return ours_results, base_results


def rows(ours: list[Result], base: list[Result]) -> list[tuple[str, ...]]:
    rate, hello = [r.rate for r in ours], [r.rate for r in base]
    ratio = median(rate) / median(hello)
    errors = sum(r.unexpected for r in ours)
    p99 = [r.percentile(0.99) * 1000 for r in ours]
    return [
        (
            f"polling 304/s (If-None-Match, 2 workers, {CONNECTIONS} conns)",
            f"{median(rate):,.0f}",
            spread(rate),
            f"hello world {median(hello):,.0f} ({spread(hello)})",
            f"{ratio:.2f}x",
            ">= 0.5x",
            "yes"
            if ratio >= 0.5 and not errors
            else f"no{f' ({errors} not 304)' if errors else ''}",
        ),
        ("polling p99 latency (ms)", f"{median(p99):.0f}", spread(p99), "-", "-", "-", "-"),
    ]


def main() -> list[tuple[str, ...]]:
    with postgres_stack() as stack:
        api, naive = stack.api(), stack.naive()
        stack.workers()
        stack.settle()
        ours, hello = measure(stack, api, naive)
    result = rows(ours, hello)
    table("Polling (PostgreSQL + Redis, loopback)", result, COLUMNS)
    return result


if __name__ == "__main__":
    main()
