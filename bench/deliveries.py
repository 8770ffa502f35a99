"""Webhook deliveries per second to a local receiver, on PostgreSQL.

The measured path is the workers' own: a backlog of support.assigned deliveries (8 support
teams, one endpoint each, all served by one receiver process) is handed out by the sweep and
sent by one worker process's sender: lease, compose from the rows, sign (Standard Webhooks),
POST, record the attempt and the outcome. Beside it, in the same run, a raw httpx client posts
the same bodies with the same concurrency and nothing else. Goal: at least 0.8x the raw rate.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx
from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from bench.common import median, postgres, spread, table
from bench.receiver import Answer
from services.notifier import delivery as webhook
from services.notifier.ledger import SENDING_PER_ENDPOINT
from services.notifier.messages import Rows, compose
from services.notifier.sender import Sender
from services.notifier.sweep import dispatch_due
from shared.db import make_engine
from shared.migrate import upgrade
from shared.models import (
    Delivery,
    DeliveryAttempt,
    Organization,
    OutboxEvent,
    Referral,
    SupportAssignment,
    SupportTeam,
    Unit,
    WebhookEndpoint,
    new_id,
    utcnow,
)

DELIVERIES = 3000
TEAMS = 8
RUNS = 3
CONCURRENCY = TEAMS * SENDING_PER_ENDPOINT  # requests at once, for both contenders


def serve(port: int) -> None:
    async def forever() -> None:
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(forever())


def seed(session: Session, url: str) -> None:
    """Organizations, teams with an endpoint each, and a backlog of support.assigned."""
    orgs = {kind: new_id() for kind in ("outreach", "housing_provider")}
    teams = [(new_id(), new_id(), new_id()) for _ in range(TEAMS)]  # org, team, endpoint
    session.execute(
        insert(Organization),
        [{"id": i, "name": f"bench {k}", "kind": k, "regions": ["b"]} for k, i in orgs.items()]
        + [
            {"id": org, "name": f"bench team {n}", "kind": "support_provider", "regions": ["b"]}
            for n, (org, _, _) in enumerate(teams)
        ],
    )
    session.execute(
        insert(SupportTeam),
        [{"id": t, "organization_id": o, "region": "b", "kind": "act", "capacity": 10**6}
         for o, t, _ in teams],
    )  # fmt: skip
    session.execute(
        insert(WebhookEndpoint),
        [{"id": e, "organization_id": o, "url": f"{url}/{n}", "events": ["support.assigned"],
          "secret": "whsec_" + base64.b64encode(os.urandom(32)).decode(), "enabled": True}
         for n, (o, _, e) in enumerate(teams)],
    )  # fmt: skip
    people, units, assignments, events, deliveries = [], [], [], [], []
    for n in range(DELIVERIES):
        org, team, endpoint = teams[n % TEAMS]
        ids = {"referral_id": new_id(), "unit_id": new_id(), "assignment_id": new_id()}
        people.append(
            {"id": ids["referral_id"], "region": "b", "organization_id": orgs["outreach"],
             "person_name": f"person {n}", "date_of_birth": date(1979, 4, 2), "gender": "male",
             "contact": "via the day centre", "support_intensity": "high", "status": "offered"}
        )  # fmt: skip
        units.append(
            {"id": ids["unit_id"], "region": "b", "organization_id": orgs["housing_provider"],
             "area": "riverside", "max_occupants": 2, "bedrooms": 1, "reference": f"Flat {n}",
             "status": "offered"}
        )  # fmt: skip
        assignments.append(
            {"id": ids["assignment_id"], "referral_id": ids["referral_id"], "team_id": team,
             "region": "b", "kind": "act", "status": "assigned"}
        )  # fmt: skip
        event_id = new_id()
        events.append(
            {"id": event_id, "topic": "support.assigned", "region": "b",
             "payload": {**ids, "team_id": team}}
        )  # fmt: skip
        deliveries.append(
            {"id": new_id(), "endpoint_id": endpoint, "event_id": event_id,
             "organization_id": org, "event_type": "support.assigned"}
        )  # fmt: skip
    for model, rows in (
        (Referral, people),
        (Unit, units),
        (SupportAssignment, assignments),
        (OutboxEvent, events),
        (Delivery, deliveries),
    ):
        session.execute(insert(model), rows)


def reset(session: Session) -> None:
    """Every delivery pending and due again, with no attempts."""
    session.execute(delete(DeliveryAttempt))
    session.execute(
        update(Delivery).values(
            status="pending", attempts=0, next_attempt_at=utcnow() - timedelta(seconds=1),
            last_status_code=None, last_error=None, delivered_at=None,
        )
    )  # fmt: skip


def bodies(session: Session) -> list[bytes]:
    """The exact bodies the workers send, for the raw client."""
    events = list(session.scalars(select(OutboxEvent)))
    rows = Rows(session)
    rows.load(events)
    return [
        webhook.body_of(event_type=e.topic, occurred_at=e.created_at, data=compose(rows, e))
        for e in events
    ]


def raw_rate(url: str, payloads: list[bytes]) -> float:
    """Posts per second from one plain httpx client (no signing, no database)."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    with httpx.Client(limits=limits) as http, ThreadPoolExecutor(CONCURRENCY) as pool:

        def post(number: int) -> None:
            body = payloads[number % len(payloads)]
            headers = {"content-type": "application/json"}
            assert http.post(f"{url}/{number % TEAMS}", content=body, headers=headers).is_success

        list(pool.map(post, range(CONCURRENCY)))  # warm the connections
        started = time.perf_counter()
        list(pool.map(post, range(len(payloads))))
        return len(payloads) / (time.perf_counter() - started)


def pipeline_rate(engine: Engine, sender: Sender) -> float:
    """Deliveries per second through the sweep and the sender, until all are delivered."""
    with Session(engine) as session:
        reset(session)
        session.commit()
    started = time.perf_counter()
    delivered, last_sweep = 0, 0.0
    while delivered < DELIVERIES:
        if time.perf_counter() - last_sweep > 1.0:  # beat's sweep (every 5 s in production)
            last_sweep = time.perf_counter()
            with Session(engine) as session:
                stamp, due = dispatch_due(session, now=utcnow())
                session.commit()
            for start in range(0, len(due), 32):
                sender.deliver(due[start : start + 32], stamp=stamp)
        time.sleep(0.05)
        with Session(engine) as session:
            query = select(func.count()).where(Delivery.status == "delivered")
            delivered = session.scalar(query) or 0
    return DELIVERIES / (time.perf_counter() - started)


def main() -> list[tuple[str, ...]]:
    os.environ["HOUSINGFIRST_ALLOW_LOOPBACK_WEBHOOK_TARGETS"] = "true"  # the receiver is local
    from shared.config import get_settings

    get_settings.cache_clear()
    from servers import free_port

    port = free_port()
    receiver = multiprocessing.get_context("spawn").Process(target=serve, args=(port,))
    receiver.start()
    url = f"http://127.0.0.1:{port}/hooks"
    deadline = time.monotonic() + 30
    while True:  # until the receiver listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        with postgres() as server_url:
            import psycopg

            with psycopg.connect(server_url, autocommit=True) as connection:
                connection.execute("DROP DATABASE IF EXISTS hf_bench_deliveries")
                connection.execute("CREATE DATABASE hf_bench_deliveries")
            database_url = server_url.rsplit("/", 1)[0] + "/hf_bench_deliveries"
            upgrade(database_url)
            engine = make_engine(database_url)
            with Session(engine) as session:
                seed(session, url)
                session.commit()
                payloads = bodies(session)
            sender = Sender(sessionmaker(engine, expire_on_commit=False))
            ours, raw, cpu_ours, cpu_raw = [], [], [], []
            for _ in range(RUNS):  # alternating, so both see the same machine
                started = time.process_time()
                raw.append(raw_rate(url, payloads))
                cpu_raw.append((time.process_time() - started) / len(payloads) * 1000)
                started = time.process_time()
                ours.append(pipeline_rate(engine, sender))
                cpu_ours.append((time.process_time() - started) / DELIVERIES * 1000)
            sender.close(timeout=30)
            engine.dispose()
    finally:
        receiver.kill()
        receiver.join()
    ratio = median(ours) / median(raw)
    rows = [
        (
            f"deliveries/s, {DELIVERIES:,} support.assigned, signed, leased, recorded",
            f"{median(ours):,.0f}",
            spread(ours),
            f"raw httpx {median(raw):,.0f}/s ({spread(raw)})",
            f"{ratio:.2f}x",
            f"{CONCURRENCY} requests at once, {TEAMS} endpoints",
            ">= 0.8x",
        ),
        (
            "CPU of this process per delivery (ms)",
            f"{median(cpu_ours):.2f}",
            spread(cpu_ours),
            f"raw httpx {median(cpu_raw):.2f} ({spread(cpu_raw)})",
            f"{median(cpu_ours) / median(cpu_raw):.2f}x",
            "signing, leases, attempt rows",
            "-",
        ),
    ]
    table(
        "Webhook deliveries (PostgreSQL, local receiver)",
        rows,
        ("measure", "median", "range", "baseline", "ratio", "setup", "goal"),
    )
    return rows


if __name__ == "__main__":
    main()
