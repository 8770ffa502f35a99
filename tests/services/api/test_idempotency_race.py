"""20 concurrent posts with one Idempotency-Key over real HTTP on PostgreSQL create one referral."""

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import func, select

from httpserver import serve_app
from services.api.app import create_app
from shared.config import Settings
from shared.domain.vocabulary import Role
from shared.models import Referral
from support import Stack, referral_body


def test_twenty_concurrent_same_key_posts_make_one_referral(
    pg_stack: Stack, tmp_path: Path
) -> None:
    headers = {**pg_stack.key(Role.outreach), "Idempotency-Key": "race-1"}
    app = create_app(Settings(database_url=pg_stack.database_url, data_dir=tmp_path))

    async def burst(base: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/referrals", json=referral_body(), headers=headers)
                    for _ in range(20)
                )
            )

    with serve_app(app) as base:
        responses = asyncio.run(burst(base))
        statuses = sorted(response.status_code for response in responses)
        assert set(statuses) <= {201, 409}, statuses
        created = {response.json()["id"] for response in responses if response.status_code == 201}
        assert len(created) == 1
        # once the first has committed, every retry answers the same 201
        retry = httpx.post(f"{base}/v1/referrals", json=referral_body(), headers=headers)
        assert retry.status_code == 201 and retry.json()["id"] in created
    with pg_stack.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 1
