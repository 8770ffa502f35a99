"""Create organizations and their API keys (used by the CLI and tests)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.api.auth import generate_key
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import ApiKey, Organization, utcnow


def create_key(
    session: Session, *, org: str, kind: OrganizationKind, role: Role, region: str | None
) -> str:
    """A new key for the organization (created if needed, region added); returns the plain key."""
    organization = session.scalar(select(Organization).where(Organization.name == org))
    if organization is None:
        organization = Organization(name=org, kind=kind.value, regions=[])
        session.add(organization)
    elif organization.kind != kind.value:
        raise ValueError(f"organization {org!r} exists with kind {organization.kind}")
    if region and region not in organization.regions:
        organization.regions = [*organization.regions, region]
    session.flush()
    key = generate_key()
    session.add(
        ApiKey(
            organization_id=organization.id,
            role=role.value,
            lookup=key.lookup,
            secret_hash=key.secret_hash,
        )
    )
    return key.plain


def revoke_key(session: Session, *, key: str) -> bool:
    """Revoke a key given whole or by its lookup part (`hf_<lookup>_...`); False if unknown."""
    lookup = key.split("_")[1] if key.startswith("hf_") and key.count("_") >= 2 else key
    found = session.scalar(select(ApiKey).where(ApiKey.lookup == lookup))
    if found is None:
        return False
    if found.revoked_at is None:
        found.revoked_at = utcnow()
    return True
