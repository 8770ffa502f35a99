"""Liveness and readiness."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.api.errors import problem_response
from shared.queue import celery_app

router = APIRouter(tags=["operations"])

CHECK_TIMEOUT_SECONDS = 3


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _broker_reachable() -> None:
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)


@router.get("/readyz", responses={503: {"description": "database or broker unreachable"}})
async def readyz(request: Request) -> JSONResponse:
    """The database and the broker answer; 503 naming what is down otherwise."""
    down: list[str] = []
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
            async with request.app.state.sessions() as session:
                await session.execute(text("SELECT 1"))
    except Exception:
        down.append("database")
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS + 1):
            await anyio.to_thread.run_sync(_broker_reachable, abandon_on_cancel=True)
    except Exception:
        down.append("broker")
    if down:
        return problem_response(503, f"Unreachable: {', '.join(down)}.")
    return JSONResponse({"status": "ready", "database": "ok", "broker": "ok"})
