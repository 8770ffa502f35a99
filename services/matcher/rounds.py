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
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.matcher.units import load_units
from shared import logs
from shared.consumption import consumed, record_consumptions, unfinished_triggers
from shared.domain.eligibility import PersonFacts
from shared.domain.events import FORWARDED_TOPICS, Consumer, Topic
from shared.domain.lifecycle import offer_expires_at
from shared.domain.priority import OfferDecision, plan_round
from shared.domain.vocabulary import OfferStatus, ReferralStatus, UnitStatus
from shared.heap import collections_paused
from shared.models import (
    MatchRound,
    Offer,
    OutboxEvent,
    Referral,
    RegionMatching,
    Unit,
    new_id,
)
from shared.outbox import PENDING_EVENTS, EventRef, forward_after_commit

CHUNK = 5000
# Every referral's round runs these: built once (with bound parameters), not per call.
_IDS: BindParameter[str] = bindparam("ids", expanding=True)
_events: Any = OutboxEvent.__table__
_REGIONS = select(_events.c.id, _events.c.region).where(_events.c.id.in_(_IDS))
_TRIGGERS = select(_events.c.id, _events.c.topic, _events.c.request_id).where(
    _events.c.id.in_(_IDS)
)
_states: Any = RegionMatching.__table__
_STATE = select(_states.c.requested, _states.c.completed).where(
    _states.c.region == bindparam("region")
)
_rounds: Any = MatchRound.__table__
_ROUND = insert(_rounds)


class StaleRound(Exception):
    """A unit or person changed while the round was planning; plan again."""


def chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


_LOCK_REGION = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def lock_region(session: Session, region: str) -> None:
    """Serialize rounds of one region (PostgreSQL advisory lock; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_REGION, {"key": f"match:{region}"})


@cache
def _upsert_state(dialect: str, *, served: bool) -> Executable:
    """A region's matching state: a request more, or every request so far served."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    fresh: dict[str, Any] = {
        "region": bindparam("region"),
        "requested": 0 if served else 1,
        "completed": 0,
    }
    if served:
        fresh["last_round_at"] = bindparam("now")
        change = {"completed": _states.c.requested, "last_round_at": bindparam("now")}
    else:
        change = {"requested": _states.c.requested + 1}
    statement = module.insert(_states).values(fresh)
    upsert: Executable = statement.on_conflict_do_update(
        index_elements=[_states.c.region], set_=change
    )
    return upsert


def request_round(session: Session, region: str) -> None:
    """Ask for a round of the region (coalesced with any request not yet served)."""
    dialect = session.get_bind().dialect.name
    session.execute(_upsert_state(dialect, served=False), {"region": region})


def mark_served(session: Session, region: str, *, now: datetime) -> None:
    """Every round request of the region made so far is served by the round this transaction
    runs next: its reads come after this statement, so they see what those requests saw."""
    dialect = session.get_bind().dialect.name
    session.execute(_upsert_state(dialect, served=True), {"region": region, "now": now})


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


def record_triggers(session: Session, events: Sequence[Any]) -> None:
    """Record the events (with `id`, `topic`, `request_id`) as done by the matcher, and
    forward to the notifier, once this transaction commits, those it acts on too
    (shared/domain/events.py FORWARDED_TOPICS): after the matcher, ahead of what the round
    emitted, so a referral's webhook goes before its offer's. A worker lost between the
    commit and the send leaves them to the relay (relay_unfinished)."""
    record_consumptions(session, events, Consumer.matcher)
    forward_after_commit(
        session,
        [
            EventRef(event.id, event.topic, event.request_id)
            for event in events
            if event.topic in FORWARDED_TOPICS
        ],
    )


def serve_request(session: Session, region: str, *, now: datetime, ttl_hours: float) -> bool:
    """Run a round if one was requested since the last; False when the region is up to date."""
    return serve(session, region, now=now, ttl_hours=ttl_hours) is not None


def serve(
    session: Session, region: str, *, now: datetime, ttl_hours: float
) -> frozenset[str] | None:
    """As serve_request; the ids of the trigger events the round recorded, or None when no
    round was needed."""
    lock_region(session, region)
    state = session.execute(_STATE, {"region": region}).first()
    if state is None or state.completed >= state.requested:
        return None
    mark_served(session, region, now=now)
    return round_now(session, region, now=now, ttl_hours=ttl_hours)


def round_now(session: Session, region: str, *, now: datetime, ttl_hours: float) -> frozenset[str]:
    """A round of the region (its lock held), recording for the matcher the region's trigger
    events it has seen (those committed before it began): their own tasks, still queued behind
    it under load, then find their work done and run no round of their own. The ids of those
    events."""
    # Read before the round reads anything: each statement sees what had committed when it
    # began, so every fact these events record is visible to the round's reads after it.
    seen = unfinished_triggers(session, region)
    causes = {e.referral_id: e.request_id for e in seen if e.referral_id and e.request_id}
    run_round(session, region, now=now, ttl_hours=ttl_hours, causes=causes)
    record_triggers(session, seen)
    return frozenset(event.id for event in seen)


def regions_of(session: Session, event_ids: Sequence[str]) -> dict[str, list[str]]:
    """The events' ids by region, in the order given, each once (events without a region,
    which call for no round, are left out)."""
    found: dict[str, str | None] = dict(
        session.execute(_REGIONS, {"ids": list(event_ids)}).tuples().all()
    )
    by_region: dict[str, list[str]] = {}
    for event_id in dict.fromkeys(event_ids):
        if region := found.get(event_id):
            by_region.setdefault(region, []).append(event_id)
    return by_region


def serve_events(
    session: Session, region: str, event_ids: Sequence[str], *, now: datetime, ttl_hours: float
) -> None:
    """The round these events of one region call for (rule 4), in this transaction, with their
    record for the matcher: none if a round since recorded them all (under load, the round
    another task ran while this one waited for the region's lock)."""
    lock_region(session, region)
    done = consumed(session, list(event_ids), Consumer.matcher)
    pending = [event_id for event_id in event_ids if event_id not in done]
    if not pending:
        return
    mark_served(session, region, now=now)
    seen = round_now(session, region, now=now, ttl_hours=ttl_hours)
    unseen = [event_id for event_id in pending if event_id not in seen]
    if unseen:  # (past the UNFINISHED_AT_ONCE oldest, under a backlog: recorded all the same)
        record_triggers(session, session.execute(_TRIGGERS, {"ids": unseen}).all())


def serve_batch(
    session: Session, event_ids: Sequence[str], *, now: datetime, ttl_hours: float
) -> dict[str, list[str]]:
    """The events published together: if they are all of one region (the usual batch), their
    round in this transaction (serve_events), and nothing is returned; otherwise nothing is
    done here, and their ids are returned by region, for a transaction each."""
    by_region = regions_of(session, event_ids)
    if len(by_region) != 1:
        return by_region
    [(region, ids)] = by_region.items()
    serve_events(session, region, ids, now=now, ttl_hours=ttl_hours)
    return {}
