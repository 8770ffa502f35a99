"""Four matcher worker processes on PostgreSQL + Redis under a burst in several regions:
referrals, unit releases, declines and withdrawals at once. No double offers; invariants hold."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from oracle import check_invariants
from processes import environment, processes, run, wait_ready
from servers import free_port
from shared.db import make_engine
from shared.models import EventConsumption, MatchRound, OutboxEvent, RegionMatching, utcnow
from support import referral_body, unit_body

REGIONS = ["north", "south", "east"]


def keys(env: dict[str, str], org: str, kind: str) -> dict[str, str]:
    plain = ""
    for region in REGIONS:
        plain = run(
            ["keys", "create", "--org", org, "--kind", kind, "--role", kind, "--region", region],
            env,
        )
    return {"Authorization": f"Bearer {plain.strip()}"}


def quiescent(database_url: str, timeout: float = 120) -> None:
    """Wait until every event was acted on and every region's round requests were served."""
    engine = make_engine(database_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with Session(engine) as session:
                unprocessed = session.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.processed_at.is_(None))
                )
                behind = session.scalar(
                    select(func.count())
                    .select_from(RegionMatching)
                    .where(RegionMatching.requested > RegionMatching.completed)
                )
            if unprocessed == 0 and behind == 0:
                return
            if time.monotonic() + 1 >= deadline:
                with Session(engine) as session:
                    stuck = session.execute(
                        select(
                            OutboxEvent.topic, OutboxEvent.published_at, OutboxEvent.created_at
                        ).where(OutboxEvent.processed_at.is_(None))
                    ).all()
                    print("stuck events:", stuck)
                    print(
                        "consumed by:",
                        session.execute(
                            select(EventConsumption.consumer, func.count())
                            .join(OutboxEvent, OutboxEvent.id == EventConsumption.event_id)
                            .where(OutboxEvent.processed_at.is_(None))
                            .group_by(EventConsumption.consumer)
                        ).all(),
                    )
            time.sleep(0.5)
        raise TimeoutError(
            f"not quiescent: {unprocessed} events unprocessed, {behind} regions behind"
        )
    finally:
        engine.dispose()


async def burst(
    base: str, outreach: dict[str, str], provider: dict[str, str], rng: random.Random
) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def refer(index: int) -> Any:
            body = referral_body(
                region=rng.choice(REGIONS),
                household={
                    "adults": rng.randint(1, 2),
                    "children": rng.choice([0, 0, 1]),
                    "pets": rng.choice([0, 1]),
                },
                priority={
                    "vulnerability_score": rng.randint(0, 100),
                    "months_homeless_last_3_years": rng.randint(0, 36),
                    "nights_unsheltered_last_year": 10,
                },
                areas={"acceptable": [], "avoid": rng.choice([[], ["harbour"]])},
            )
            response = await client.post(
                "/v1/referrals", json=body, headers={**outreach, "Idempotency-Key": f"b{index}"}
            )
            assert response.status_code == 201, response.text
            return response.json()

        async def release(index: int) -> Any:
            body = unit_body(
                region=rng.choice(REGIONS),
                area=rng.choice(["harbour", "riverside"]),
                max_occupants=rng.randint(1, 3),
                pets_allowed=rng.random() < 0.5,
            )
            response = await client.post("/v1/units", json=body, headers=provider)
            assert response.status_code == 201, response.text
            return response.json()

        people = await asyncio.gather(*(refer(i) for i in range(120)))
        units = await asyncio.gather(*(release(i) for i in range(40)))
        await asyncio.sleep(1)
        offers = (await client.get("/v1/offers?status=open&limit=500", headers=outreach)).json()[
            "items"
        ]
        actions = []
        for offer in rng.sample(offers, k=min(10, len(offers))):
            actions.append(
                client.post(
                    f"/v1/offers/{offer['id']}/decline", json={"reason": "no"}, headers=outreach
                )
            )
        for person in rng.sample(people, k=15):
            actions.append(
                client.post(
                    f"/v1/referrals/{person['id']}/withdraw",
                    json={"reason": "gone"},
                    headers=outreach,
                )
            )
        for unit in rng.sample(units, k=8):
            actions.append(
                client.patch(
                    f"/v1/units/{unit['id']}", json={"status": "offline"}, headers=provider
                )
            )
        actions.extend(release(1000 + i) for i in range(20))
        actions.extend(refer(1000 + i) for i in range(40))
        rng.shuffle(actions)
        results = await asyncio.gather(*actions)
        for result in results:
            if isinstance(result, httpx.Response):
                assert result.status_code in (200, 409), result.text


def test_four_matcher_workers_under_a_burst(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = environment(database_url=postgres_url, broker_url=redis_url, data_dir=str(tmp_path))
    run(["migrate"], env)
    outreach = keys(env, "Burst outreach", "outreach")
    provider = keys(env, "Burst homes", "housing_provider")
    port = free_port()
    with processes(env, tmp_path) as group:
        group.start("api", ["api", "--port", str(port), "--workers", "2"])
        for index in range(4):
            group.start(
                f"matcher{index}",
                [
                    "worker",
                    "--queues",
                    "matching,maintenance",
                    "--concurrency",
                    "1",
                    "--name",
                    f"m{index}@%h",
                ],
            )
        group.start("notifier", ["worker", "--queues", "notifications", "--name", "n@%h"])
        group.start("beat", ["beat"])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            asyncio.run(burst(base, outreach, provider, random.Random(7)))
            quiescent(postgres_url)
            engine = make_engine(postgres_url)
            with Session(engine) as session:
                check_invariants(session, None, utcnow().date())
                referrals = session.scalar(  # (each its own request and event)
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where(OutboxEvent.topic == "referral.received")
                )
                rounds = session.scalar(select(func.count()).select_from(MatchRound))
            engine.dispose()
            assert rounds is not None and referrals is not None
            # every referral calls for a round; tasks queued behind a round find theirs done
            assert rounds < referrals, f"{rounds} rounds for {referrals} referrals: not coalesced"
        except BaseException:
            print(group.logs())
            raise
