"""A referral: one person (and household) met on the street, waiting for a home."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column, utcnow


class Referral(Base):
    """Personal fields (name, date of birth, contact) can be erased; the facts stay."""

    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_region_status", "region", "status"),
        Index("ix_referrals_org_updated", "organization_id", "updated_at", "id"),
    )

    id: Mapped[str] = id_column()
    region: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("organizations.id"))
    person_name: Mapped[str | None] = mapped_column(String(200))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    birth_year: Mapped[int | None] = mapped_column(Integer)
    gender: Mapped[str | None] = mapped_column(String(32))
    contact: Mapped[str | None] = mapped_column(Text)
    adults: Mapped[int] = mapped_column(Integer, default=1)
    children: Mapped[int] = mapped_column(Integer, default=0)
    pets: Mapped[int] = mapped_column(Integer, default=0)
    needs_wheelchair: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_step_free: Mapped[bool] = mapped_column(Boolean, default=False)
    veteran: Mapped[bool] = mapped_column(Boolean, default=False)
    areas_acceptable: Mapped[list[str]] = mapped_column(JSON, default=list)
    areas_avoid: Mapped[list[str]] = mapped_column(JSON, default=list)
    support_intensity: Mapped[str] = mapped_column(String(16))
    vulnerability_score: Mapped[int] = mapped_column(Integer, default=0)
    months_homeless: Mapped[int] = mapped_column(Integer, default=0)
    nights_unsheltered: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    contact_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    expiries_in_a_row: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    erased_at: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
