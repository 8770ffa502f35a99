"""GET /v1/ops/queues for operations and admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.api.auth import Caller
from services.api.deps import Db, require
from services.api.ops_data import report
from shared.domain.vocabulary import Role

router = APIRouter(prefix="/v1/ops", tags=["operations"])
OpsCaller = Annotated[Caller, Depends(require(Role.operations, Role.admin))]


@router.get("/queues")
async def queues(session: Db, caller: OpsCaller) -> dict[str, Any]:
    """Per queue depth and oldest age (where the broker can tell), workers seen, outbox,
    deliveries, support waiting for capacity, and matching rounds of the last minutes."""
    return await report(session)
