"""Worker heartbeats: which workers are alive and what they consume (any broker)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, created_at_column


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    hostname: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime] = created_at_column()
