"""A matching round against the database: load, plan with the pure core, write the offers."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    BindParameter,
    Executable,
    Table,
    Text,
    bindparam,
    cast,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from services.matcher.units import load_units
from shared import logs
from shared.domain.eligibility import PersonFacts
from shared.domain.events import Topic
from shared.domain.lifecycle import offer_expires_at
from shared.domain.priority import OfferDecision, plan_round
from shared.domain.vocabulary import OfferStatus, ReferralStatus, UnitStatus
from shared.heap import collections_paused
from shared.models import (
    MatchRound,
    Offer,
    OutboxEvent,
    Referral,
    Unit,
    new_id,
)
from shared.outbox import PENDING_EVENTS, EventRef

CHUNK = 5000
# Every referral's round runs these: built once (with bound parameters), not per call.
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_rounds: Any = MatchRound.__table__
_ROUND = insert(_rounds)


class StaleRound(Exception):
    """A unit or person changed while the round was planning; plan again."""


def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _areas(text_value: str | None) -> tuple[str, ...]:
    """Area lists arrive as JSON text; most are empty, so parse only the others."""
    if not text_value or text_value == "[]":
        return ()
    return tuple(orjson.loads(text_value))


_REGION: BindParameter[str] = bindparam("region")
_DECLINED = (
    select(Offer.referral_id, Offer.unit_id)
    .join(Referral, Referral.id == Offer.referral_id)
    .where(
        Referral.region == _REGION,
        Referral.status == ReferralStatus.waiting,
        Offer.status == OfferStatus.declined,
    )
)
_WAITING = select(
    Referral.id,
    Referral.adults,
    Referral.children,
    Referral.pets,
    Referral.needs_wheelchair,
    Referral.needs_step_free,
    Referral.veteran,
    Referral.gender,
    Referral.date_of_birth,
    Referral.birth_year,
    cast(Referral.areas_acceptable, Text),
    cast(Referral.areas_avoid, Text),
    Referral.vulnerability_score,
    Referral.months_homeless,
    Referral.created_at,
    Referral.version,
).where(Referral.region == _REGION, Referral.status == ReferralStatus.waiting)


def load_people(session: Session, region: str) -> list[tuple[PersonFacts, int]]:
    """Waiting people of a region (the hot read of a round: plain tuples, no ORM objects)."""
    connection = session.connection()
    declined: dict[str, set[str]] = defaultdict(set)
    for referral_id, unit_id in connection.execute(_DECLINED, {"region": region}):
        declined[referral_id].add(unit_id)
    rows = connection.execute(_WAITING, {"region": region})
    no_declines: frozenset[str] = frozenset()
    return [
        (
            PersonFacts(
                id,
                adults,
                children,
                pets,
                wheelchair,
                step_free,
                veteran,
                gender,
                born or (date(birth_year, 7, 1) if birth_year else None),
                _areas(acceptable),
                _areas(avoid),
                score,
                months,
                created_at,
                frozenset(declined[id]) if id in declined else no_declines,
            ),
            version,
        )
        for (
            id,
            adults,
            children,
            pets,
            wheelchair,
            step_free,
            veteran,
            gender,
            born,
            birth_year,
            acceptable,
            avoid,
            score,
            months,
            created_at,
            version,
        ) in rows
    ]


@cache
def _versions(table: Table) -> Executable:
    return (
        select(table.c.id, table.c.version, table.c.status)
        .where(table.c.id.in_(_IDS))
        .with_for_update()
    )


@cache
def _offered(table: Table, status: str) -> Executable:
    return (
        update(table)
        .where(table.c.id.in_(_IDS))
        .values(status=status, version=table.c.version + 1, updated_at=bindparam("now"))
    )


def confirm_unchanged(
    session: Session, model: type[Unit] | type[Referral], expected: dict[str, int], status: str
) -> None:
    """Lock the chosen rows and check none changed since they were read (else StaleRound)."""
    ids = sorted(expected)
    statement = _versions(model.__table__)
    for part in chunks(ids):
        rows = session.execute(statement, {"ids": list(part)}).all()
        if len(rows) != len(part) or any(
            row.status != status or row.version != expected[row.id] for row in rows
        ):
            raise StaleRound


def bulk_insert(
    session: Session, model: type[Offer] | type[OutboxEvent], rows: list[dict[str, Any]]
) -> None:
    """Insert many rows; on PostgreSQL with COPY (a 10,000-offer round is one stream)."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    columns = list(rows[0])
    json_columns = {"explanation", "payload"}
    driver = session.connection().connection.driver_connection
    assert driver is not None
    statement = f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(
                [
                    orjson.dumps(row[column]).decode() if column in json_columns else row[column]
                    for column in columns
                ]
            )


def write_offers(
    session: Session,
    region: str,
    decisions: Sequence[OfferDecision],
    *,
    now: datetime,
    ttl_hours: float,
    causes: Mapping[str, str] | None = None,
) -> list[EventRef]:
    """Insert the offers and their offer.created events; mark units and people offered. An
    offer's event carries the request id of its person's own change when the round saw it
    (`causes`, by referral id), so a referral can be followed in the logs to its webhooks."""
    for table, status, ids in (
        (Unit.__table__, UnitStatus.offered, [d.unit_id for d in decisions]),
        (Referral.__table__, ReferralStatus.offered, [d.referral_id for d in decisions]),
    ):
        statement = _offered(table, status.value)
        for part in chunks(sorted(ids)):
            session.execute(statement, {"ids": list(part), "now": now})
    expires_at = offer_expires_at(offered_at=now, ttl_hours=ttl_hours)
    cause = logs.request_id.get()  # the request whose change triggered this round
    causes = causes or {}
    offers: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for decision in decisions:
        offer_id = new_id()
        offers.append(
            {
                "id": offer_id,
                "referral_id": decision.referral_id,
                "unit_id": decision.unit_id,
                "region": region,
                "status": OfferStatus.open.value,
                "expires_at": expires_at,
                "explanation": decision.explanation,
                "created_at": now,
                "updated_at": now,
            }
        )
        events.append(
            {
                "id": new_id(),
                "topic": Topic.offer_created.value,
                "region": region,
                "request_id": causes.get(decision.referral_id, cause),
                "payload": {
                    "offer_id": offer_id,
                    "referral_id": decision.referral_id,
                    "unit_id": decision.unit_id,
                },
                "created_at": now,
            }
        )
    if offers:
        bulk_insert(session, Offer, offers)
        bulk_insert(session, OutboxEvent, events)
    return [EventRef(event["id"], event["topic"], event["request_id"]) for event in events]


@collections_paused()
def run_round(
    session: Session,
    region: str,
    *,
    now: datetime,
    ttl_hours: float,
    causes: Mapping[str, str] | None = None,
) -> int:
    """One exact round for the region: every available unit to its first-ranked eligible person."""
    started = time.perf_counter()
    units = load_units(session, region)
    people = load_people(session, region) if units else []
    decisions = plan_round([u for u, _ in units], [p for p, _ in people], now.date())
    if decisions:
        unit_versions = {u.id: version for u, version in units}
        person_versions = {p.id: version for p, version in people}
        confirm_unchanged(
            session,
            Unit,
            {d.unit_id: unit_versions[d.unit_id] for d in decisions},
            UnitStatus.available,
        )
        confirm_unchanged(
            session,
            Referral,
            {d.referral_id: person_versions[d.referral_id] for d in decisions},
            ReferralStatus.waiting,
        )
        refs = write_offers(session, region, decisions, now=now, ttl_hours=ttl_hours, causes=causes)
        session.info.setdefault(PENDING_EVENTS, []).extend(refs)
    session.execute(
        _ROUND,
        {
            "id": new_id(),
            "region": region,
            "started_at": now,
            "duration_seconds": time.perf_counter() - started,
            "units_considered": len(units),
            "people_considered": len(people),
            "offers_made": len(decisions),
        },
    )
    return len(decisions)
