"""The transactional outbox: events written with the facts, published after commit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, JSONType, created_at_column, id_column


class OutboxEvent(Base):
    """One fact that happened; consumers record that they acted on it."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(
            "ix_outbox_events_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index(
            "ix_outbox_events_unprocessed",
            "created_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    topic: Mapped[str] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(64))
    # The API request that caused it, so one referral can be followed through every log.
    request_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = created_at_column()
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)


class EventConsumption(Base):
    """That one consumer (matcher, notifier) finished acting on one event."""

    __tablename__ = "event_consumptions"

    event_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("outbox_events.id"), primary_key=True
    )
    consumer: Mapped[str] = mapped_column(String(32), primary_key=True)
    processed_at: Mapped[datetime] = created_at_column()
