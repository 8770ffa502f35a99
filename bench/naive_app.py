"""The baselines the API is measured against, served like it (uvicorn, 2 workers, same pool):
a naive intake route (the same body, validated by the same schema, one ORM insert through an
AsyncSession; no key, no idempotency, no outbox, no audit, no publish) and a hello-world route."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from services.api.schemas.referral import ReferralCreate
from shared.config import get_settings
from shared.db import make_async_engine, make_async_session_factory
from shared.models import Referral


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    engine = make_async_engine(get_settings().database_url)
    app.state.sessions = make_async_session_factory(engine)
    yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan)
ORGANIZATION = os.environ.get("BENCH_ORGANIZATION_ID", "")


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.post("/naive/referrals", status_code=201)
async def create_referral(body: ReferralCreate) -> dict[str, Any]:
    async with app.state.sessions() as session:
        referral = Referral(
            region=body.region,
            organization_id=ORGANIZATION,
            person_name=body.person.name,
            date_of_birth=body.person.date_of_birth,
            gender=body.person.gender,
            contact=body.person.contact,
            adults=body.household.adults,
            children=body.household.children,
            pets=body.household.pets,
            needs_wheelchair=body.needs.wheelchair,
            needs_step_free=body.needs.step_free,
            veteran=body.eligibility.veteran,
            areas_acceptable=body.areas.acceptable,
            areas_avoid=body.areas.avoid,
            support_intensity=body.support_intensity,
            vulnerability_score=body.priority.vulnerability_score,
            months_homeless=body.priority.months_homeless_last_3_years,
            nights_unsheltered=body.priority.nights_unsheltered_last_year,
            status="waiting",
        )
        session.add(referral)
        await session.commit()
        return {"id": referral.id, "status": referral.status, "created_at": referral.created_at}
