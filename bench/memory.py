"""Peak RSS (VmHWM, from /proc) of the API worker and each Celery worker during intake and
polling, then again with 100,000 referrals in the database. Goal: API worker <= 150 MB,
Celery worker <= 200 MB (the largest process of each)."""

from __future__ import annotations

import random

import httpx
from sqlalchemy import insert
from sqlalchemy.orm import Session

from bench import intake, polling
from bench.common import table
from bench.intake import COLUMNS
from bench.matching import person_row
from bench.stack import REGION, Stack, postgres_stack
from shared.db import make_engine
from shared.models import Referral

PEOPLE = 100_000


def seed_people(stack: Stack) -> None:
    assert stack.keys is not None
    rng = random.Random(7)
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        for start in range(0, PEOPLE, 10_000):
            rows = [
                person_row(rng, stack.keys.outreach_org, n) for n in range(start, start + 10_000)
            ]
            session.execute(insert(Referral), [{**row, "region": REGION} for row in rows])
        session.commit()
    engine.dispose()


def peaks(stack: Stack) -> dict[str, float]:
    return {name: stack.peak_rss_mb(name) for name in ("api", "matcher", "notifier")}


def main() -> list[tuple[str, ...]]:
    with postgres_stack() as stack:
        api, naive = stack.api(), stack.naive()
        stack.workers()
        stack.settle()
        intake.measure(stack, api, naive, runs=1)
        polling.measure(stack, api, naive, runs=1)
        during = peaks(stack)
        seed_people(stack)
        assert stack.keys is not None
        intake.measure(stack, api, naive, runs=1)
        with httpx.Client(base_url=api, timeout=60) as http:  # list pages over the 100,000
            cursor = None
            for _ in range(20):
                query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                page = http.get("/v1/referrals", params=query, headers=stack.keys.outreach).json()
                cursor = page.get("cursor") or page.get("next_cursor")
        loaded = peaks(stack)
    goals = {"api": 150.0, "matcher": 200.0, "notifier": 200.0}
    rows: list[tuple[str, ...]] = []
    for name, label in (("api", "API worker"), ("matcher", "matcher"), ("notifier", "notifier")):
        for phase, figures in (("intake + polling", during), (f"{PEOPLE:,} referrals", loaded)):
            rows.append(
                (f"peak RSS {label}, {phase} (MB)", f"{figures[name]:.0f}", "-", "-", "-",
                 f"<= {goals[name]:.0f} MB", "yes" if figures[name] <= goals[name] else "no")
            )  # fmt: skip
    table("Memory: peak RSS per process (largest of each service's processes)", rows, COLUMNS)
    return rows


if __name__ == "__main__":
    main()
