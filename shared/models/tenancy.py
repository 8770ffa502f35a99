"""Tenancies and absences: the home is kept while the person is away (rule 7)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column, utcnow


class Tenancy(Base):
    """Created at move-in; only an explicit end frees the unit."""

    __tablename__ = "tenancies"
    __table_args__ = (
        Index("ix_tenancies_org_updated", "organization_id", "updated_at", "id"),
        Index("ix_tenancies_unit_status", "unit_id", "status"),
    )

    id: Mapped[str] = id_column()
    offer_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("offers.id"), unique=True)
    referral_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("referrals.id"))
    unit_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("units.id"))
    organization_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("organizations.id"))
    region: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    started_on: Mapped[date] = mapped_column(Date)
    ended_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Absence(Base):
    """Hospital, prison or other time away; the tenancy stays active throughout."""

    __tablename__ = "absences"

    id: Mapped[str] = id_column()
    tenancy_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("tenancies.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    from_date: Mapped[date] = mapped_column(Date)
    to_date: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
