"""Per-region matching requests, so bursts of triggers coalesce into few rounds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column, id_column


class RegionMatching(Base):
    """`requested` grows with every trigger; a round records the value it started from."""

    __tablename__ = "region_matching"

    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    last_round_at: Mapped[datetime | None] = mapped_column(default=None)


class MatchRound(Base):
    """One matching round, kept for operations (duration, offers made)."""

    __tablename__ = "match_rounds"

    id: Mapped[str] = id_column()
    region: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = created_at_column()
    duration_seconds: Mapped[float] = mapped_column(Float)
    units_considered: Mapped[int] = mapped_column(Integer)
    people_considered: Mapped[int] = mapped_column(Integer)
    offers_made: Mapped[int] = mapped_column(Integer)
