"""Matching at scale on PostgreSQL: 10,000 units released against 100,000 waiting people.

Reports seconds to commit all offers (median of runs) beside the reference oracle's time on the
same data, checks they agree, and times one round triggered by one referral when no unit is free.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, update
from sqlalchemy.orm import Session

from bench.common import median, postgres, spread, table
from oracle import load_state, open_offers, oracle_sorted
from services.keys import create_key
from services.matcher.regions import request_round, serve_request
from shared.db import make_engine
from shared.domain.vocabulary import OrganizationKind, ProgrammeTag, Role
from shared.migrate import upgrade
from shared.models import (
    MatchRound,
    Offer,
    OutboxEvent,
    Referral,
    RegionMatching,
    Unit,
    new_id,
    utcnow,
)

PEOPLE = 100_000
UNITS = 10_000
RUNS = 3
AREAS = [f"area-{n}" for n in range(10)]
REGION = "bench"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def person_row(rng: random.Random, org: str, index: int) -> dict[str, Any]:
    return {
        "id": new_id(),
        "region": REGION,
        "organization_id": org,
        "person_name": f"person {index}",
        "date_of_birth": rng.choice([None, date(1960, 1, 1), date(1985, 6, 1), date(2003, 2, 2)]),
        "gender": rng.choice(["female", "male", "male", "non_binary"]),
        "adults": 1 if rng.random() < 0.85 else 2,
        "children": 0 if rng.random() < 0.85 else rng.randint(1, 3),
        "pets": 1 if rng.random() < 0.1 else 0,
        "needs_wheelchair": rng.random() < 0.03,
        "needs_step_free": rng.random() < 0.07,
        "veteran": rng.random() < 0.08,
        "areas_acceptable": rng.sample(AREAS, 3) if rng.random() < 0.1 else [],
        "areas_avoid": [rng.choice(AREAS)] if rng.random() < 0.2 else [],
        "support_intensity": rng.choice(["high", "moderate", "low"]),
        "vulnerability_score": rng.randint(0, 100),
        "months_homeless": rng.randint(0, 36),
        "nights_unsheltered": rng.randint(0, 365),
        "status": "waiting",
        "created_at": T0 + timedelta(seconds=index),
        "updated_at": T0 + timedelta(seconds=index),
        "version": 1,
        "contact_needed": False,
        "expiries_in_a_row": 0,
    }


def unit_row(rng: random.Random, org: str, index: int) -> dict[str, Any]:
    tags = rng.choice(
        [[], [], [], [], [], [], [], [], [ProgrammeTag.veterans], [ProgrammeTag.families]]
    )
    since = T0 + timedelta(minutes=index)
    return {
        "id": new_id(),
        "region": REGION,
        "organization_id": org,
        "area": rng.choice(AREAS),
        "max_occupants": rng.choice([1, 1, 1, 2, 2, 3, 4]),
        "bedrooms": 1,
        "wheelchair_accessible": rng.random() < 0.05,
        "step_free": rng.random() < 0.1,
        "pets_allowed": rng.random() < 0.4,
        "eligibility": [str(tag) for tag in tags],
        "status": "available",
        "available_since": since,
        "created_at": since,
        "updated_at": since,
        "version": 1,
    }


def seed(session: Session) -> None:
    rng = random.Random(2026)
    outreach = create_key(
        session,
        org="bench outreach",
        kind=OrganizationKind.outreach,
        role=Role.outreach,
        region=REGION,
    )
    provider = create_key(
        session,
        org="bench homes",
        kind=OrganizationKind.housing_provider,
        role=Role.housing_provider,
        region=REGION,
    )
    assert outreach and provider
    session.flush()
    from shared.models import Organization

    orgs = {o.kind: o.id for o in session.query(Organization)}
    people = [person_row(rng, orgs["outreach"], i) for i in range(PEOPLE)]
    for start in range(0, PEOPLE, 10_000):
        session.execute(insert(Referral), people[start : start + 10_000])
    session.execute(
        insert(Unit), [unit_row(rng, orgs["housing_provider"], i) for i in range(UNITS)]
    )


def reset(session: Session) -> None:
    """Undo a round so the next run starts from the same state."""
    session.execute(delete(OutboxEvent))
    session.execute(delete(Offer))
    session.execute(delete(MatchRound))
    session.execute(delete(RegionMatching))
    session.execute(update(Unit).values(status="available", version=1))
    session.execute(update(Referral).where(Referral.status != "waiting").values(status="waiting"))


def one_round(engine: Any) -> float:
    """Request and serve one round of the region; seconds until its offers are committed."""
    started = time.perf_counter()
    with Session(engine) as session:
        request_round(session, REGION)
        serve_request(session, REGION, now=utcnow(), ttl_hours=72)
        session.commit()
    return time.perf_counter() - started


def main() -> list[tuple[str, ...]]:
    with postgres() as server_url:
        import psycopg

        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute("DROP DATABASE IF EXISTS hf_bench_matching")
            connection.execute("CREATE DATABASE hf_bench_matching")
        url = server_url.rsplit("/", 1)[0] + "/hf_bench_matching"
        upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session:
            seed(session)
            session.commit()
        with Session(engine) as session:
            session.execute(__import__("sqlalchemy").text("ANALYZE"))
            session.commit()
        with Session(engine) as session:
            units, people = load_state(session, REGION)
        started = time.perf_counter()
        expected = oracle_sorted(units, people, utcnow().date())
        oracle_seconds = time.perf_counter() - started
        round_times: list[float] = []
        agrees = True
        for _ in range(RUNS):
            round_times.append(one_round(engine))
            with Session(engine) as session:
                agrees = agrees and open_offers(session, REGION) == expected
                offers = len(open_offers(session, REGION))
                reset(session)
                session.commit()
        # one referral arrives when no unit is free
        with Session(engine) as session:
            session.execute(update(Unit).values(status="offered"))
            session.commit()
        single_times = [one_round(engine) for _ in range(5)]
        engine.dispose()
    rows: list[tuple[str, ...]] = [
        (
            f"round: {UNITS:,} units x {PEOPLE:,} people, commit all offers (s)",
            f"{median(round_times):.2f}",
            spread(round_times),
            f"oracle {oracle_seconds:.2f} s",
            f"{oracle_seconds / median(round_times):.1f}x faster",
            f"{offers:,} offers; agrees with oracle: {agrees}",
            "<= 5 s",
        ),
        (
            "round: one referral, no unit free (ms)",
            f"{median(single_times) * 1000:.1f}",
            spread([t * 1000 for t in single_times]),
            "-",
            "-",
            "-",
            "-",
        ),
    ]
    table(
        "Matching (PostgreSQL)",
        rows,
        ("measure", "median", "range", "baseline", "ratio", "check", "goal"),
    )
    return rows


if __name__ == "__main__":
    main()
