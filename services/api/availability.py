"""Cheap polling for providers: their units with status and open offer, an ETag from the
newest change (no per-unit work for a 304), and a cursor for what changed since."""

from __future__ import annotations

import hashlib
from datetime import datetime
from types import SimpleNamespace
from typing import Annotated, Any, cast
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.auth import Caller, split_key
from services.api.deps import Db, ProviderCaller, remembered_caller
from services.api.freshness import Watch
from services.api.guards import ASGIApp, Message, Receive, Scope, Send
from services.api.pagination import encode_cursor, parse_changed_since
from shared.domain.lifecycle import LIVE_OFFER_STATUSES
from shared.domain.vocabulary import Role
from shared.models import Offer, Unit

router = APIRouter(prefix="/v1/availability", tags=["units"])


def entity_tag(*parts: object) -> str:
    return '"' + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32] + '"'


# Built once: a 304 is on every poll's path.
_NEWEST_AND_COUNT = select(func.max(Unit.updated_at), func.count()).select_from(Unit)


def availability_tag(
    caller: Caller,
    region: str | None,
    changed_since: str | None,
    newest: datetime | None,
    count: int,
) -> str:
    """The strong ETag of what the caller would be shown."""
    return entity_tag(caller.organization_id, region, changed_since, newest, count)


def matches(tag: str, if_none_match: str | None) -> bool:
    return if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}


def scope_of(caller: Caller) -> str | None:
    """The organization whose units the caller sees (None: an admin sees every unit)."""
    return None if caller.role is Role.admin else caller.organization_id


def unit_conditions(owner: str | None, region: str | None) -> list[ColumnElement[bool]]:
    own = Unit.organization_id == owner if owner is not None else None
    return [c for c in (own, Unit.region == region if region else None) if c is not None]


async def newest_and_count(
    session: AsyncSession, watch: Watch, owner: str | None, region: str | None
) -> tuple[datetime | None, int]:
    """The newest change and the count of the units in scope: from memory while no unit of
    the owner changed since it was read (freshness.py), else one indexed aggregate."""
    key = (owner, region or None)
    token = watch.units_token(owner)
    remembered = watch.recall("marker", key, token)
    if remembered is not None:
        return cast(tuple[datetime | None, int], remembered)
    newest, count = (
        await session.execute(_NEWEST_AND_COUNT.where(*unit_conditions(owner, region)))
    ).one()
    watch.remember("marker", key, token, (newest, count))
    return newest, count


@router.get("", responses={304: {"description": "Not modified"}})
async def availability(
    request: Request,
    session: Db,
    caller: ProviderCaller,
    region: str | None = None,
    changed_since: str | None = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """Each of the caller's units with its status and open offer.

    Every change to a unit or to an offer on it moves the unit's `updated_at`, so the newest
    `updated_at` and the count of units say whether anything changed: a 304 costs one indexed
    aggregate query, or none while this process has heard of no change (NotModified below).
    """
    owner = scope_of(caller)
    newest, count = await newest_and_count(session, request.app.state.watch, owner, region)
    tag = availability_tag(caller, region, changed_since, newest, count)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if matches(tag, if_none_match):
        return Response(status_code=304, headers=headers)
    query = select(Unit).where(*unit_conditions(owner, region))
    if changed_since:
        stamp, after_id = parse_changed_since(changed_since)
        query = query.where(
            or_(Unit.updated_at > stamp, and_(Unit.updated_at == stamp, Unit.id > after_id))
        )
    units = list(await session.scalars(query.order_by(Unit.updated_at, Unit.id)))
    offers = (
        {
            offer.unit_id: offer
            for offer in await session.scalars(
                select(Offer).where(
                    Offer.unit_id.in_([unit.id for unit in units]),
                    Offer.status.in_(LIVE_OFFER_STATUSES),
                )
            )
        }
        if units
        else {}
    )
    items = [shown(unit, offers.get(unit.id)) for unit in units]
    cursor = encode_cursor(units[-1].updated_at, units[-1].id) if units else changed_since
    if cursor is None and newest is not None:
        cursor = encode_cursor(newest, "")
    return JSONResponse({"items": items, "cursor": cursor}, headers=headers)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def shown(unit: Unit, offer: Offer | None) -> dict[str, Any]:
    return {
        "id": unit.id,
        "reference": unit.reference,
        "region": unit.region,
        "area": unit.area,
        "status": unit.status,
        "updated_at": iso(unit.updated_at),
        "open_offer": {
            "id": offer.id,
            "status": offer.status,
            "referral_id": offer.referral_id,
            "expires_at": iso(offer.expires_at),
        }
        if offer
        else None,
    }


POLL_PATH = "/v1/availability"
POLL_ROUTE = SimpleNamespace(path=POLL_PATH)  # how the metrics name it (observe.py)
POLL_PARAMETERS = {"region", "changed_since"}
PROVIDER_ROLES = (Role.housing_provider, Role.admin)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class NotModified:
    """Answers a provider's repeated poll (`If-None-Match` with the current tag) with 304 from
    memory, before routing, when the caller and the marker are both remembered and current:
    the answer the route would give, without the database or the framework. Anything else
    goes on to the route. It sits inside the guards (rate limit, headers) and observation.

    Every other request that may write makes the process forget the markers it remembers
    before its answer leaves, so a client always reads its own writes."""

    def __init__(self, app: ASGIApp, *, watch: Watch) -> None:
        self.app = app
        self.watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS:
            await self.app(scope, receive, self._forgetting(send))
            return
        if scope["path"] == POLL_PATH and scope["method"] == "GET":
            headers = self._answer(scope)
            if headers is not None:
                scope["route"] = POLL_ROUTE
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)

    def _forgetting(self, send: Send) -> Send:
        async def forgetting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.watch.forget_markers()  # (the write, if any, has committed by now)
            await send(message)

        return forgetting_send

    def _answer(self, scope: Scope) -> list[tuple[bytes, bytes]] | None:
        """The 304's headers, if it can be answered from memory."""
        if not self.watch.live:
            return None
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:  # the first of each, as the route reads them
            headers.setdefault(name, value)
        if_none_match = headers.get(b"if-none-match")
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, credentials = authorization.partition(" ")
        parts = split_key(credentials.strip()) if scheme.lower() == "bearer" else None
        if if_none_match is None or parts is None:
            return None
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        parameters = dict(query)
        if len(parameters) != len(query) or not parameters.keys() <= POLL_PARAMETERS:
            return None  # (repeated or unknown parameters: the route decides)
        caller = remembered_caller(self.watch, *parts)
        if caller is None or caller.role not in PROVIDER_ROLES:
            return None
        region = parameters.get("region")
        owner = scope_of(caller)
        marker = self.watch.recall("marker", (owner, region or None), self.watch.units_token(owner))
        if marker is None:
            return None
        tag = availability_tag(caller, region, parameters.get("changed_since"), *marker)
        if not matches(tag, if_none_match.decode("latin-1")):
            return None
        return [(b"etag", tag.encode()), (b"cache-control", b"private, no-cache")]
