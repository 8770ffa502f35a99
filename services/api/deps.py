"""Request dependencies: the session (unit of work), the caller and its role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.auth import Caller, secret_matches, split_key
from services.api.errors import Problem
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import ApiKey, Organization, utcnow

LAST_USED_GRANULARITY = timedelta(minutes=1)

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer hf_...`")


def session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return factory


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the route commits, anything unfinished is rolled back."""
    async with session_factory(request)() as session:
        yield session


Db = Annotated[AsyncSession, Depends(get_session)]


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller behind the bearer key, or 401."""
    unauthorized = Problem(
        401, "A valid API key is required.", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    parts = split_key(credentials.credentials)
    if parts is None:
        raise unauthorized
    lookup, secret = parts
    async with session_factory(request)() as session:
        row = (
            await session.execute(
                select(ApiKey, Organization)
                .join(Organization, Organization.id == ApiKey.organization_id)
                .where(ApiKey.lookup == lookup)
            )
        ).first()
        if row is None:
            raise unauthorized
        key, organization = row
        if key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
            raise unauthorized
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
            key.last_used_at = now  # kept to the minute: one write a minute per key, not per call
            await session.commit()
    return Caller(
        key_id=key.id,
        organization_id=organization.id,
        organization_kind=OrganizationKind(organization.kind),
        role=Role(key.role),
        regions=tuple(organization.regions or ()),
    )


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A dependency admitting only the given roles (403 for the others)."""

    async def dependency(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if caller.role not in roles:
            raise Problem(403, f"The {caller.role} role may not do this.")
        return caller

    return dependency


OutreachCaller = Annotated[Caller, Depends(require(Role.outreach, Role.admin))]
ProviderCaller = Annotated[Caller, Depends(require(Role.housing_provider, Role.admin))]
SupportCaller = Annotated[Caller, Depends(require(Role.support_provider, Role.admin))]
AnyCaller = Annotated[Caller, Depends(get_caller)]
