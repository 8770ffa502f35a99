"""End to end on PostgreSQL + Redis with the real processes (API with 2 workers, matcher,
notifier, beat): referrals posted at 50/s for a bounded time while units and an ACT team are
available; the time from each POST's response to the support.assigned webhook for that referral
at a local receiver. Goal: p50 <= 30 ms, p99 <= 150 ms."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from bench.common import ROOT, median, server_cpu_seconds, spread, table
from bench.intake import COLUMNS
from bench.load import fixed_rate
from bench.stack import REGION, Stack, postgres_stack, referral, wait_for
from servers import free_port
from shared.db import make_engine
from shared.models import Organization, Unit, new_id, utcnow

RATE = 50.0
SECONDS = 12.0
RUNS = 3
LOWER_RATE = 10.0  # for context: the same path at a rate this machine sustains


@dataclass
class Receiver:
    url: str
    path: Path
    process: Any

    def arrivals(self) -> dict[str, float]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        return {line.split()[0]: float(line.split()[1]) for line in lines}

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def start_receiver(folder: Path) -> Receiver:
    port = free_port()
    path = folder / "arrivals.txt"
    argv = [sys.executable, "-m", "bench.receiver", str(port), str(path)]
    process = subprocess.Popen(argv, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/hooks"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.post(url, content=b"{}", timeout=1)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return Receiver(url, path, process)


def add_units(database_url: str, count: int) -> None:
    """Available units of the bench provider, straight into the database (no events)."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        provider = session.scalar(select(Organization.id).where(Organization.name == "bench homes"))
        now = utcnow()
        session.execute(
            insert(Unit),
            [{"id": new_id(), "region": REGION, "organization_id": provider, "area": "riverside",
              "max_occupants": 2, "bedrooms": 1, "pets_allowed": True, "eligibility": [],
              "status": "available", "available_since": now, "created_at": now,
              "updated_at": now, "version": 1, "reference": f"Flat {n}"}
             for n in range(count)],
        )  # fmt: skip
        session.commit()
    engine.dispose()


def add_team_and_endpoint(api: str, support: dict[str, str], url: str) -> None:
    with httpx.Client(base_url=api, timeout=30) as http:
        team = {"region": REGION, "kind": "act", "capacity": 10_000}
        assert http.post("/v1/support-teams", json=team, headers=support).status_code == 201
        hook = {"url": url, "events": ["support.assigned"]}
        answer = http.post("/v1/webhook-endpoints", json=hook, headers=support)
        assert answer.status_code == 201, answer.text


def one_run(
    api: str, outreach: dict[str, str], receiver: Receiver, *, rate: float, seconds: float
) -> tuple[list[float], int, int]:
    """Post at `rate` for `seconds`; (latencies in s, webhooks missing, POSTs failed)."""
    result, answers = fixed_rate(
        api, lambda n: referral(n, outreach), expect=201, per_second=rate, seconds=seconds
    )
    responded = {body["id"]: arrived for body, arrived in answers}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not responded.keys() <= receiver.arrivals().keys():
        time.sleep(0.2)
    arrivals = receiver.arrivals()
    latencies = [arrivals[i] - at for i, at in responded.items() if i in arrivals]
    return latencies, len(responded) - len(latencies), result.unexpected


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


@dataclass
class Measured:
    """p50 and p99 (ms) per run, webhooks missing or POSTs failed, and CPU (ms) per referral
    per run by process: each of ours with its workers, and PostgreSQL's server processes."""

    p50: list[float]
    p99: list[float]
    missing: int
    cpu: dict[str, list[float]]


def cpu_now(stack: Stack, engine: Engine) -> dict[str, float]:
    """CPU seconds so far: the stack's processes (the receiver and the load generator are
    not counted), and PostgreSQL's when it runs on this machine."""
    used = stack.cpu_by_process()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            database = server_cpu_seconds(connection)
        if database is not None:
            used["postgresql"] = database
    return used


def measure(
    stack: Stack, api: str, receiver: Receiver, *, rate: float, seconds: float, runs: int
) -> Measured:
    """Post at `rate` for `seconds`, `runs` times, each run timed until its last webhook."""
    assert stack.keys is not None
    add_units(stack.database_url, int(rate * seconds * runs * 1.1) + 10)
    engine = make_engine(stack.database_url)
    try:
        result = Measured([], [], 0, defaultdict(list))
        for _ in range(runs):
            before = cpu_now(stack, engine)
            latencies, lost, failed = one_run(
                api, stack.keys.outreach, receiver, rate=rate, seconds=seconds
            )
            after = cpu_now(stack, engine)
            result.p50.append(percentile(latencies, 0.5) * 1000)
            result.p99.append(percentile(latencies, 0.99) * 1000)
            result.missing += lost + failed
            for name, used in after.items():
                result.cpu[name].append((used - before.get(name, 0.0)) / (rate * seconds) * 1000)
    finally:
        engine.dispose()
    return result


@contextmanager
def receiving(stack: Stack, api: str) -> Iterator[Receiver]:
    """A receiver, with an ACT team and its endpoint there, and the workers warmed up. One for
    every measurement of a stack: each referral's support.assigned goes to it alone (no
    endpoint of an earlier measurement, its receiver gone, is left subscribed)."""
    assert stack.keys is not None
    receiver = start_receiver(stack.log_dir)
    try:
        add_team_and_endpoint(api, stack.keys.support, receiver.url)
        one_run(api, stack.keys.outreach, receiver, rate=1, seconds=1)  # until workers are up
        yield receiver
    finally:
        receiver.stop()


def main() -> list[tuple[str, ...]]:
    with postgres_stack() as stack:
        api = stack.api()
        stack.workers()
        stack.settle()
        wait_for(api + "/readyz")
        with receiving(stack, api) as receiver:
            low = measure(stack, api, receiver, rate=LOWER_RATE, seconds=SECONDS, runs=RUNS)
            high = measure(stack, api, receiver, rate=RATE, seconds=SECONDS, runs=RUNS)
    p50, p99, missing = high.p50, high.p99, high.missing
    low50, low99, low_missing = low.p50, low.p99, low.missing
    note = f"{RUNS} runs x {SECONDS:.0f} s at {RATE:.0f}/s; {missing} missing"
    totals = [sum(run) for run in zip(*high.cpu.values(), strict=True)]
    parts = ", ".join(f"{name} {median(used):.1f}" for name, used in high.cpu.items())
    cores = os.cpu_count() or 1
    rows: list[tuple[str, ...]] = [
        ("end to end p50: POST response -> support.assigned (ms)", f"{median(p50):.0f}",
         spread(p50), note, "-", "<= 30 ms", "yes" if median(p50) <= 30 and not missing else "no"),
        ("end to end p99 (ms)", f"{median(p99):.0f}", spread(p99), "-", "-", "<= 150 ms",
         "yes" if median(p99) <= 150 and not missing else "no"),
        (f"end to end p50 at {LOWER_RATE:.0f}/s, for context (ms)", f"{median(low50):.0f}",
         spread(low50), f"p99 {median(low99):.0f} ms; {low_missing} missing", "-", "-", "-"),
        (f"CPU per referral at {RATE:.0f}/s (ms), to its last webhook", f"{median(totals):.1f}",
         spread(totals), parts,
         f"{median(totals) * RATE / 1000 / cores:.0%} of {cores} cores", "-", "-"),
    ]  # fmt: skip
    table("End to end (PostgreSQL + Redis, real workers, local receiver)", rows, COLUMNS)
    return rows


if __name__ == "__main__":
    main()
