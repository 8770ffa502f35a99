"""The referral API: records facts and answers reads; it never runs matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from services.api import (
    audit,
    availability,
    deliveries,
    errors,
    health,
    observe,
    offers,
    openapi,
    ops,
    ops_page,
    referral_changes,
    referrals,
    reports,
    support,
    tenancies,
    units,
    webhooks,
)
from services.api.dependency_keys import remember_dependency_keys
from services.api.freshness import Watch
from services.api.guards import Guards
from services.api.intake import Intakes
from services.api.publishing import Publisher
from shared.config import Settings, get_settings
from shared.db import make_async_engine, make_async_session_factory
from shared.heap import freeze_startup
from shared.outbox import warm_up_publishing


def create_app(settings: Settings | None = None) -> FastAPI:
    """The FastAPI application for the given settings."""
    remember_dependency_keys()
    settings = settings or get_settings()
    watch = Watch(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(settings.database_url)
        app.state.engine = engine
        app.state.sessions = make_async_session_factory(engine)
        app.state.publisher = Publisher(app.state.sessions)
        app.state.intakes = Intakes(app.state.sessions)
        await anyio.to_thread.run_sync(warm_up_publishing)
        watch.start()
        freeze_startup()
        yield
        await app.state.publisher.settled()
        await anyio.to_thread.run_sync(watch.stop)
        await engine.dispose()

    app = FastAPI(
        title="Housing First referral service",
        version="1",
        description="Matches people sleeping rough to homes at once, with no readiness test.",
        lifespan=lifespan,
        # No OpenTelemetry here (metrics are Prometheus's, services/api/observe.py): without
        # this, FastAPI looks for a configured provider in the environment on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.watch = watch
    errors.install(app)
    openapi.install(app)
    app.add_middleware(availability.NotModified, watch=watch)  # innermost: inside the guards
    app.add_middleware(
        Guards, max_body_bytes=settings.max_body_bytes, per_minute=settings.rate_limit_per_minute
    )
    app.add_middleware(observe.Observe)
    for module in (
        health,
        referral_changes,
        referrals,
        units,
        offers,
        tenancies,
        support,
        webhooks,
        reports,
    ):
        app.include_router(module.router)
    app.include_router(support.assignments)
    app.include_router(audit.router)
    app.include_router(availability.router)
    app.include_router(ops.router)
    app.include_router(observe.router)
    app.include_router(ops_page.router)
    app.include_router(deliveries.router)
    return app
