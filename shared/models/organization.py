"""Organizations and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.models.base import ID_LENGTH, Base, created_at_column, id_column


class Organization(Base):
    """An outreach team, housing provider, support provider or the operations team."""

    __tablename__ = "organizations"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = created_at_column()


class ApiKey(Base):
    """A key of one organization with one role; only a hash of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = id_column()
    organization_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("organizations.id"), index=True
    )
    role: Mapped[str] = mapped_column(String(32))
    lookup: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
