"""Stored answers for Idempotency-Key retries, per organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, JSONType, created_at_column, id_column


class IdempotencyKey(Base):
    """Written in the same transaction as the referral it created."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("organization_id", "key"),)

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("organizations.id"))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType)
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = created_at_column()
