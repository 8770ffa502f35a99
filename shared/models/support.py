"""Support teams and the assignment of a team to a person."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column, utcnow


class SupportTeam(Base):
    """An ACT, intensive case management or floating support team with a stated caseload."""

    __tablename__ = "support_teams"
    __table_args__ = (Index("ix_support_teams_region_kind", "region", "kind"),)

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("organizations.id"))
    region: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    capacity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_at_column()


class SupportAssignment(Base):
    """Belongs to the person, not the offer; never ends or changes a tenancy."""

    __tablename__ = "support_assignments"
    __table_args__ = (Index("ix_support_assignments_team_status", "team_id", "status"),)

    id: Mapped[str] = id_column()
    referral_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("referrals.id"), unique=True
    )
    team_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), ForeignKey("support_teams.id"))
    region: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    step_down_reason: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
