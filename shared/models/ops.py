"""Worker heartbeats: which workers are alive and what they consume (any broker)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import Base, UTCDateTime, created_at_column


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    hostname: Mapped[str] = mapped_column(String(200), primary_key=True)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime] = created_at_column()


class TaskRun(Base):
    """A task's work (its name and arguments) while it runs: a row left behind means a worker
    died running it. Past the limit of such deaths the work is dead, with its cause, and is not
    run again (a poison message must not crash workers for ever)."""

    __tablename__ = "task_runs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of name + arguments
    task_name: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[list[object]] = mapped_column(JSON, default=list)  # ids only
    starts: Mapped[int] = mapped_column(Integer, default=0)
    first_started_at: Mapped[datetime] = created_at_column()
    last_started_at: Mapped[datetime] = created_at_column()
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime(timezone=True), index=True)
    cause: Mapped[str | None] = mapped_column(String(500))
