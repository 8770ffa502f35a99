"""An offer of one unit to one person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, JSONType, created_at_column, id_column, utcnow

LIVE_OFFER = text("status IN ('open', 'accepted')")


class Offer(Base):
    """At most one open or accepted offer per unit and per person (partial unique indexes)."""

    __tablename__ = "offers"
    __table_args__ = (
        Index(
            "uq_offers_live_unit",
            "unit_id",
            unique=True,
            postgresql_where=LIVE_OFFER,
            sqlite_where=LIVE_OFFER,
        ),
        Index(
            "uq_offers_live_referral",
            "referral_id",
            unique=True,
            postgresql_where=LIVE_OFFER,
            sqlite_where=LIVE_OFFER,
        ),
        Index("ix_offers_referral_status", "referral_id", "status"),
        Index("ix_offers_status_expires", "status", "expires_at"),
        Index("ix_offers_updated", "updated_at", "id"),
    )

    id: Mapped[str] = id_column()
    referral_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("referrals.id"))
    unit_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("units.id"), index=True)
    region: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="open")
    expires_at: Mapped[datetime]
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
