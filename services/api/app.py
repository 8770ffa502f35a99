"""The referral API: records facts and answers reads; it never runs matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.api import errors, health, referrals, support, units, webhooks
from shared.config import Settings, get_settings
from shared.db import make_async_engine, make_async_session_factory


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application for the given settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessions = make_async_session_factory(engine)
        yield
        await engine.dispose()

    app = FastAPI(
        title="Housing First referral service",
        version="1",
        description="Matches people sleeping rough to homes at once, with no readiness test.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (health, referrals, units, support, webhooks):
        app.include_router(module.router)
    return app
