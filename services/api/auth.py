"""API keys: random, prefixed, only a hash stored; the caller they identify."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from shared.domain.vocabulary import OrganizationKind, Role

KEY_PREFIX = "hf"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: one key of one organization with one role."""

    key_id: str
    organization_id: str
    organization_kind: OrganizationKind
    role: Role
    regions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: the plain text is shown once, only the hash is kept."""

    plain: str
    lookup: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    """SHA-256 is enough for 256-bit random secrets (no dictionary to attack)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> NewKey:
    """A new key `hf_<lookup>_<secret>`."""
    lookup = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewKey(
        plain=f"{KEY_PREFIX}_{lookup}_{secret}", lookup=lookup, secret_hash=hash_secret(secret)
    )


def split_key(plain: str) -> tuple[str, str] | None:
    """The lookup part and the secret of a presented key, or None if malformed."""
    parts = plain.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with the stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
