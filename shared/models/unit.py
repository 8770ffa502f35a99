"""A home offered by a housing provider."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column, utcnow


class Unit(Base):
    """Eligibility holds only tags from the closed list of lawful programme targets."""

    __tablename__ = "units"
    __table_args__ = (
        Index("ix_units_region_status", "region", "status"),
        Index("ix_units_org_updated", "organization_id", "updated_at", "id"),
    )

    id: Mapped[str] = id_column()
    region: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("organizations.id"))
    reference: Mapped[str | None] = mapped_column(String(200))
    area: Mapped[str] = mapped_column(String(100))
    max_occupants: Mapped[int] = mapped_column(Integer)
    bedrooms: Mapped[int] = mapped_column(Integer)
    wheelchair_accessible: Mapped[bool] = mapped_column(Boolean, default=False)
    step_free: Mapped[bool] = mapped_column(Boolean, default=False)
    pets_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    eligibility: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="available")
    available_since: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
