"""Offer bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from services.api.schemas.common import Reason, Strict


class OfferOut(BaseModel):
    id: str
    referral_id: str
    unit_id: str
    region: str
    status: str
    expires_at: datetime
    decline_reason: str | None
    explanation: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class OfferPage(BaseModel):
    items: list[OfferOut]
    next_cursor: str | None
    cursor: str | None


class DeclineBody(Strict):
    reason: Reason


class WithdrawBody(Strict):
    reason: Reason
