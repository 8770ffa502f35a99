"""Referrals from street outreach: intake with Idempotency-Key, and reads."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, BackgroundTasks, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.audit import audit_rows, record
from services.api.auth import Caller
from services.api.deps import AnyCaller, Db, OutreachCaller
from services.api.errors import Problem
from services.api.intake import IDEMPOTENCY, Intake, Intakes, complete
from services.api.publishing import publish_after_response
from services.api.regions import check_region
from services.api.schemas.referral import (
    OfferSummary,
    PersonOut,
    ReferralCreate,
    ReferralOut,
    SupportSummary,
)
from services.api.scope import get_visible
from shared.domain.events import Topic
from shared.domain.lifecycle import LIVE_OFFER_STATUSES
from shared.models import AuditEvent, Offer, OutboxEvent, Referral, SupportAssignment, new_id
from shared.outbox import event_row

REFERRALS = cast(Table, Referral.__table__)
EVENTS = cast(Table, OutboxEvent.__table__)
AUDIT = cast(Table, AuditEvent.__table__)
_NO_VALUES = {column.key: None for column in REFERRALS.columns}

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])


def referral_out(
    referral: Referral | SimpleNamespace,
    offer: Offer | None,
    assignment: SupportAssignment | None,
) -> ReferralOut:
    """The referral as API.md shows it, with its current offer and support assignment."""
    return ReferralOut.model_validate(
        {
            "id": referral.id,
            "region": referral.region,
            "status": referral.status,
            "person": PersonOut(
                name=referral.person_name,
                date_of_birth=referral.date_of_birth,
                gender=referral.gender,
                contact=referral.contact,
                erased=referral.erased_at is not None,
            ),
            "household": {
                "adults": referral.adults,
                "children": referral.children,
                "pets": referral.pets,
            },
            "needs": {
                "wheelchair": referral.needs_wheelchair,
                "step_free": referral.needs_step_free,
            },
            "eligibility": {"veteran": referral.veteran},
            "areas": {"acceptable": referral.areas_acceptable, "avoid": referral.areas_avoid},
            "support_intensity": referral.support_intensity,
            "priority": {
                "vulnerability_score": referral.vulnerability_score,
                "months_homeless_last_3_years": referral.months_homeless,
                "nights_unsheltered_last_year": referral.nights_unsheltered,
            },
            "contact_needed": referral.contact_needed,
            "offer": OfferSummary.model_validate(offer, from_attributes=True) if offer else None,
            "support": SupportSummary.model_validate(assignment, from_attributes=True)
            if assignment
            else None,
            "created_at": referral.created_at,
            "updated_at": referral.updated_at,
        }
    )


def referral_values(body: ReferralCreate, caller: Caller) -> dict[str, Any]:
    """A waiting referral's columns from an intake body (defaults filled in)."""
    return complete(
        REFERRALS,
        {
            "id": new_id(),
            "region": body.region,
            "organization_id": caller.organization_id,
            "person_name": body.person.name,
            "date_of_birth": body.person.date_of_birth,
            "birth_year": body.person.date_of_birth.year if body.person.date_of_birth else None,
            "gender": body.person.gender,
            "contact": body.person.contact,
            "adults": body.household.adults,
            "children": body.household.children,
            "pets": body.household.pets,
            "needs_wheelchair": body.needs.wheelchair,
            "needs_step_free": body.needs.step_free,
            "veteran": body.eligibility.veteran,
            "areas_acceptable": body.areas.acceptable,
            "areas_avoid": body.areas.avoid,
            "support_intensity": body.support_intensity,
            "vulnerability_score": body.priority.vulnerability_score,
            "months_homeless": body.priority.months_homeless_last_3_years,
            "nights_unsheltered": body.priority.nights_unsheltered_last_year,
            "status": "waiting",
        },
    )


async def current_offer_and_support(
    session: AsyncSession, referral_id: str
) -> tuple[Offer | None, SupportAssignment | None]:
    """The live (or latest) offer and the support assignment of a referral."""
    offer = (
        await session.execute(
            select(Offer)
            .where(Offer.referral_id == referral_id)
            .order_by(Offer.status.in_(list(LIVE_OFFER_STATUSES)).desc(), Offer.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    assignment = (
        await session.execute(
            select(SupportAssignment).where(SupportAssignment.referral_id == referral_id)
        )
    ).scalar_one_or_none()
    return offer, assignment


def fingerprint(body: ReferralCreate) -> str:
    """A hash of the request's meaning (normalized body), per Idempotency-Key."""
    canonical = orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def replay(stored: Any, body_fingerprint: str) -> JSONResponse:
    """The stored answer for a repeated key, or 422 when the key is reused with another body."""
    if stored.fingerprint != body_fingerprint:
        raise Problem(422, "This Idempotency-Key was already used with a different request body.")
    headers = {"Idempotent-Replayed": "true"}
    if stored.location:
        headers["Location"] = stored.location
    return JSONResponse(stored.response, status_code=stored.status_code, headers=headers)


def referral_intake(
    body: ReferralCreate, caller: Caller, key: str, body_fingerprint: str
) -> tuple[Intake, dict[str, Any], str]:
    """What a new referral writes (the referral, its event, its audit entry and the answer
    kept for its key), the answer and its location."""
    values = referral_values(body, caller)
    # (a plain namespace of the row, not an ORM instance: the answer only reads it)
    row = SimpleNamespace(**{**_NO_VALUES, **values})
    answer = referral_out(row, None, None).model_dump(mode="json")
    location = f"/v1/referrals/{values['id']}"
    event, event_values = event_row(
        Topic.referral_received,
        region=body.region,
        payload={"referral_id": values["id"], "organization_id": caller.organization_id},
    )
    kept = {
        "organization_id": caller.organization_id,
        "key": key,
        "fingerprint": body_fingerprint,
        "status_code": 201,
        "response": answer,
        "location": location,
    }
    rows = [(REFERRALS, values), (EVENTS, complete(EVENTS, event_values))]
    rows += [(AUDIT, row) for row in audit_rows(caller, "create", "referral", [values["id"]])]
    rows.append((IDEMPOTENCY, complete(IDEMPOTENCY, kept)))
    return Intake(caller.organization_id, key, rows=rows, events=[event]), answer, location


@router.post("", status_code=201, response_model=ReferralOut)
async def create_referral(
    body: ReferralCreate,
    request: Request,
    background: BackgroundTasks,
    caller: OutreachCaller,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    """Record a referral once per Idempotency-Key; matching starts the moment it commits.
    The writing is done by the process's batch (intake.py): the request opens no session."""
    if idempotency_key is None or not 1 <= len(idempotency_key) <= 255:
        raise Problem(400, "The Idempotency-Key header is required (1 to 255 characters).")
    check_region(caller, body.region)
    body_fingerprint = fingerprint(body)
    intake, answer, location = referral_intake(body, caller, idempotency_key, body_fingerprint)
    intakes: Intakes = request.app.state.intakes
    stored = await intakes.submit(intake)
    if stored is not None:
        return replay(stored, body_fingerprint)
    publish_after_response(request, background, intake.events)
    return Response(
        orjson.dumps(answer),
        status_code=201,
        media_type="application/json",
        headers={"Location": location},
    )


@router.get("/{referral_id}", response_model=ReferralOut)
async def get_referral(referral_id: str, session: Db, caller: AnyCaller) -> ReferralOut:
    """The referral with its status, current offer and support assignment."""
    referral = await get_visible(session, caller, Referral, referral_id)
    offer, assignment = await current_offer_and_support(session, referral.id)
    answer = referral_out(referral, offer, assignment)
    record(session, caller, "read", "referral", [referral.id])
    await session.commit()
    return answer
