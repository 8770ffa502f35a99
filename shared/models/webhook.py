"""Webhook endpoints and one delivery per endpoint and event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column, utcnow


class WebhookEndpoint(Base):
    """Where an organization wants its events, signed with a per-endpoint whsec_ secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("organizations.id"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Delivery(Base):
    """Unique per endpoint and event, so a redelivered task never sends a second delivery."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
        # An endpoint's open deliveries by when they are due (only open ones have a time): what
        # its next claims and its count of leases in flight read, however many it has had.
        Index(
            "ix_deliveries_open_by_endpoint",
            "endpoint_id",
            "next_attempt_at",
            postgresql_where=text("next_attempt_at IS NOT NULL"),
            sqlite_where=text("next_attempt_at IS NOT NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    endpoint_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), ForeignKey("outbox_events.id"))
    organization_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = created_at_column()


class DeliveryAttempt(Base):
    """One try of a delivery: what the receiver answered, how long it took, what failed."""

    __tablename__ = "delivery_attempts"

    id: Mapped[str] = id_column()
    delivery_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("deliveries.id"), index=True
    )
    attempted_at: Mapped[datetime] = created_at_column()
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
