"""Cheap polling for providers: their units with status and open offer, an ETag from the
newest change (no per-unit work for a 304), and a cursor for what changed since."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from sqlalchemy import and_, func, or_, select

from services.api.deps import Db, ProviderCaller
from services.api.pagination import encode_cursor, parse_changed_since
from shared.domain.lifecycle import LIVE_OFFER_STATUSES
from shared.domain.vocabulary import Role
from shared.models import Offer, Unit

router = APIRouter(prefix="/v1/availability", tags=["units"])


def entity_tag(*parts: object) -> str:
    return '"' + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32] + '"'


@router.get("", responses={304: {"description": "Not modified"}})
async def availability(
    session: Db,
    caller: ProviderCaller,
    region: str | None = None,
    changed_since: str | None = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
) -> Response:
    """Each of the caller's units with its status and open offer.

    Every change to a unit or to an offer on it moves the unit's `updated_at`, so the newest
    `updated_at` and the count of units say whether anything changed: a 304 costs one indexed
    aggregate query.
    """
    own = Unit.organization_id == caller.organization_id if caller.role is not Role.admin else None
    conditions = [c for c in (own, Unit.region == region if region else None) if c is not None]
    newest, count = (
        await session.execute(select(func.max(Unit.updated_at), func.count()).where(*conditions))
    ).one()
    tag = entity_tag(caller.organization_id, region, changed_since, newest, count)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache"}
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    query = select(Unit).where(*conditions)
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
