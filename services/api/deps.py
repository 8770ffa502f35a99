"""Request dependencies: the session (unit of work), the caller and its role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.api.auth import Caller, secret_matches, split_key
from services.api.errors import Problem
from services.api.freshness import Watch
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import ApiKey, Organization, utcnow

LAST_USED_GRANULARITY = timedelta(minutes=1)

# Built once (every request runs it): a reused statement's cache key is memoized.
KEY_AND_ORGANIZATION = (
    select(
        ApiKey.id,
        ApiKey.role,
        ApiKey.secret_hash,
        ApiKey.revoked_at,
        ApiKey.last_used_at,
        Organization.id.label("organization_id"),
        Organization.kind,
        Organization.regions,
    )
    .join(Organization, Organization.id == ApiKey.organization_id)
    .where(ApiKey.lookup == bindparam("lookup"))
)

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer hf_...`")


def session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    factory: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return factory


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the route commits, anything unfinished is rolled back."""
    async with session_factory(request)() as session:
        yield session


Db = Annotated[AsyncSession, Depends(get_session)]


def remembered_caller(watch: Watch, lookup: str, secret: str) -> Caller | None:
    """The caller this process read for the key, if still current (freshness.py), the secret
    matches, and its last use needs no new stamp; None means: read the database."""
    remembered = watch.recall("caller", lookup, watch.callers_token())
    if remembered is None:
        return None
    secret_hash, caller, last_used_at = remembered
    if not secret_matches(secret, secret_hash) or stale_use(last_used_at, utcnow()):
        return None
    return cast(Caller, caller)


def stale_use(last_used_at: datetime | None, now: datetime) -> bool:
    """Kept to the minute: one write a minute per key, not one per call."""
    return last_used_at is None or now - last_used_at > LAST_USED_GRANULARITY


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller behind the bearer key, or 401: from this process's memory while nothing
    about the key has changed, else read on a session of its own, ended before the route runs
    (a route that needs no database, such as an intake, then opens no session at all)."""
    unauthorized = Problem(
        401, "A valid API key is required.", headers={"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    parts = split_key(credentials.credentials)
    if parts is None:
        raise unauthorized
    lookup, secret = parts
    watch: Watch = request.app.state.watch
    known = remembered_caller(watch, lookup, secret)
    if known is not None:
        return known
    token = watch.callers_token()  # before the read: a change during it makes it stale
    async with session_factory(request)() as session:
        key = (await session.execute(KEY_AND_ORGANIZATION, {"lookup": lookup})).first()
        if key is None or key.revoked_at is not None or not secret_matches(secret, key.secret_hash):
            raise unauthorized
        now = utcnow()
        last_used_at = key.last_used_at
        if stale_use(last_used_at, now):
            statement = update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now)
            await session.execute(statement)
            last_used_at = now
        await session.commit()  # (ends the read: on SQLite it holds the lock)
    caller = Caller(
        key_id=key.id,
        organization_id=key.organization_id,
        organization_kind=OrganizationKind(key.kind),
        role=Role(key.role),
        regions=tuple(key.regions or ()),
    )
    watch.remember("caller", lookup, token, (key.secret_hash, caller, last_used_at))
    return caller


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
