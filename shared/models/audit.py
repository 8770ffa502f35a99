"""Who read or changed personal data, when (written in the same transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_object", "object_type", "object_id", "at"),)

    id: Mapped[str] = id_column()
    key_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    organization_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    at: Mapped[datetime] = created_at_column()
