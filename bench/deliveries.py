"""Webhook deliveries per second to a local receiver, on PostgreSQL.

The measured path is the workers' own: a backlog of support.assigned deliveries (8 support
teams, one endpoint each, all served by one receiver process) is handed out by the sweep (one
sweep, as beat is one, its chunks handed to the worker processes in turn, as the broker hands
deliver tasks to the notifier's pool processes) and sent by the worker processes' senders:
lease, compose from the rows, sign (Standard Webhooks), POST, record the attempt and the
outcome. Beside it, in the same run, raw httpx clients post the same bodies, each once, with
the same concurrency and nothing else. Goal: at least 0.8x the raw rate.

Two shapes are measured: the notifier as deployed (`housingfirst worker` runs 2 processes by
default, each sending up to 32 requests at once) and a single worker process; each beside as
many raw client processes, each with the workers' client layout and 32 requests at once, and
each process on a core of its own as the notifier's are (services/notifier/affinity.py). Rates
count from the first delivery (process start-up excluded, as the raw clients' connections are
warmed before they are timed).
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import os
import queue
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from bench.common import median, postgres, server_cpu_seconds, spread, table
from bench.receiver import Answer
from services.notifier import delivery as webhook
from services.notifier.affinity import pin_to_one_core
from services.notifier.ledger import SENDING_PER_ENDPOINT
from services.notifier.messages import Rows, compose
from services.notifier.sender import Sender
from services.notifier.status import OPEN_STATUSES
from services.notifier.sweep import dispatch_due
from services.notifier.tasks import DISPATCH_CHUNK
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

DELIVERIES = 6000
TEAMS = 8
RUNS = 3
CONCURRENCY = TEAMS * SENDING_PER_ENDPOINT  # requests at once per process, for both contenders
SHAPES = (2, 1)  # worker processes: as deployed (`housingfirst worker --concurrency 2`), and one
SHAPE_NAMES = {2: "notifier as deployed (2 processes)", 1: "one worker process"}


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
    rows = Rows(session)
    events = rows.events(session.scalars(select(OutboxEvent.id)))
    return [
        webhook.body_of(event_type=e.topic, occurred_at=e.created_at, data=compose(rows, e))
        for e in events.values()
    ]


def raw_loop(
    url: str,
    payloads: list[bytes],
    turns: Any,
    ready: Any,
    results: Any,
    share: tuple[int, int],
    core: int | None,
) -> None:
    """One raw client process: plain httpx (no signing, no database), laid out as a worker's
    clients are: per endpoint, one client sending SENDING_PER_ENDPOINT requests at once (a
    single client with all 32 is slower: its pool is the bottleneck, encode/httpx#3215). On
    each turn it warms its connections, waits for the other raw processes, posts its share of
    the payloads (`share`: this process's number, of how many; every payload is posted once
    in all, as every delivery is made once), and reports when it started and finished and its
    CPU seconds. With a `core`, pinned to it as the worker process of the same index is;
    without, run plainly."""
    if core is not None:
        pin_to_one_core(core)
    limits = httpx.Limits(
        max_connections=SENDING_PER_ENDPOINT, max_keepalive_connections=SENDING_PER_ENDPOINT
    )
    clients = [httpx.Client(limits=limits) for _ in range(TEAMS)]
    pools = [ThreadPoolExecutor(SENDING_PER_ENDPOINT) for _ in range(TEAMS)]

    def post(number: int) -> None:
        endpoint = number % TEAMS
        answer = clients[endpoint].post(
            f"{url}/{endpoint}",
            content=payloads[number % len(payloads)],
            headers={"content-type": "application/json"},
        )
        assert answer.is_success

    def run(numbers: range) -> None:
        sent = [pools[number % TEAMS].submit(post, number) for number in numbers]
        for future in sent:
            future.result()

    while turns.get():
        run(range(CONCURRENCY))  # warm the connections
        ready.wait()
        started, cpu = time.monotonic(), time.process_time()  # (one clock for all processes)
        number, processes = share  # (each body is posted once, by one of the processes)
        run(range(number, len(payloads), processes))
        results.put((started, time.monotonic(), time.process_time() - cpu))
    for pool in pools:
        pool.shutdown()
    for client in clients:
        client.close()


class RawClients:
    """Raw client processes, as many as the worker processes they are compared with, pinned
    as the workers are or (plain) left to the scheduler."""

    def __init__(
        self, url: str, payloads: list[bytes], processes: int, *, pinned: bool = True
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.posts = len(payloads)
        self.turns, self.results = context.Queue(), context.Queue()
        self.ready = context.Barrier(processes)
        self.processes = [
            context.Process(
                target=raw_loop,
                args=(
                    url,
                    payloads,
                    self.turns,
                    self.ready,
                    self.results,
                    (index, processes),
                    index if pinned else None,
                ),
            )
            for index in range(processes)
        ]
        for process in self.processes:
            process.start()

    def rate(self) -> tuple[float, float]:
        """Posts per second of all the processes together, from the first start to the last
        finish; and their CPU (ms) per post."""
        for _ in self.processes:
            self.turns.put(True)
        reports = [self.results.get(timeout=300) for _ in self.processes]
        posts = self.posts
        elapsed = max(end for _, end, _ in reports) - min(start for start, _, _ in reports)
        return posts / elapsed, sum(cpu for _, _, cpu in reports) / posts * 1000

    def stop(self) -> None:
        for _ in self.processes:
            self.turns.put(False)
        for process in self.processes:
            process.join(timeout=60)


def send_loop(database_url: str, tasks: Any, done: Any, cpu: Any, index: int) -> None:
    """One worker process: runs the deliver tasks the sweep hands it (as a notifier pool process
    runs the broker's), each sent by this process's sender; at the end of each run (a None
    task), its CPU seconds. Kept across runs, so its caches and connections are warm, as a
    worker's are; on its own core, as the notifier's pool process of the same index is
    (sender.get_sender)."""
    pin_to_one_core(index)
    engine = make_engine(database_url, pool_pre_ping=False)
    sender = Sender(sessionmaker(engine, expire_on_commit=False))
    started = time.process_time()
    while not done.is_set():
        try:
            task = tasks.get(timeout=0.1)
        except queue.Empty:
            continue
        if task is None:
            sender.drain(timeout=30)
            cpu.put(time.process_time() - started)
            started = time.process_time()
            continue
        chunk, stamp = task
        sender.deliver(chunk, stamp=stamp)
    sender.close(timeout=30)
    engine.dispose()


class Workers:
    """Worker processes, started once and run for each measurement. The sweep (beat's, every
    5 s in production; every second here) hands its chunks to them in turn, as the broker
    hands deliver tasks to the notifier's pool processes."""

    def __init__(self, database_url: str, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.done, self.cpu = context.Event(), context.Queue()
        self.tasks = [context.Queue() for _ in range(processes)]
        self.processes = [
            context.Process(
                target=send_loop, args=(database_url, tasks, self.done, self.cpu, index)
            )
            for index, tasks in enumerate(self.tasks)
        ]
        for process in self.processes:
            process.start()
        self.turn = 0

    def sweep(self, engine: Engine) -> None:
        """What the sweep task does: hand out the due deliveries, a chunk per deliver task."""
        with Session(engine) as session:
            stamp, due = dispatch_due(session, now=utcnow())
            session.commit()
        for start in range(0, len(due), DISPATCH_CHUNK):
            chunk = due[start : start + DISPATCH_CHUNK]
            self.tasks[self.turn % len(self.tasks)].put((chunk, stamp))
            self.turn += 1

    def finish(self) -> float:
        """End a run: each process finishes what it holds; their CPU seconds in all."""
        for tasks in self.tasks:
            tasks.put(None)
        return float(sum(self.cpu.get(timeout=60) for _ in self.processes))

    def stop(self) -> None:
        self.done.set()
        for process in self.processes:
            process.join(timeout=60)


def pipeline_rate(engine: Engine, workers: Workers) -> tuple[float, float, float | None]:
    """Deliveries per second through the sweep and the worker processes' senders, from the
    first delivery recorded to the last; the workers' CPU (ms) per delivery; and PostgreSQL's
    (ms per delivery, from the go to the end, polling included; None if the server is not on
    this machine). Polled with index probes (a count every 20 ms would cost the database more
    than some of the work it measures)."""
    with Session(engine) as session:
        reset(session)
        session.commit()
    # Every run rewrites each row several times: vacuumed between runs, as autovacuum would
    # between bursts, so later runs do not wade through the earlier runs' dead rows.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE deliveries, delivery_attempts"))
        database_before = server_cpu_seconds(connection)
    workers.sweep(engine)
    last_sweep = time.perf_counter()
    delivered = select(Delivery.id).where(Delivery.status == "delivered").limit(1)
    still_open = select(Delivery.id).where(Delivery.status.in_(OPEN_STATUSES)).limit(1)
    count_delivered = select(func.count()).where(Delivery.status == "delivered")
    first, started = 0, 0.0
    while True:
        time.sleep(0.02)
        if time.perf_counter() - last_sweep > 1.0:
            workers.sweep(engine)
            last_sweep = time.perf_counter()
        with Session(engine) as session:
            if not started and session.scalar(delivered) is not None:
                started = time.perf_counter()
                first = session.scalar(count_delivered) or 0
            if started and session.scalar(still_open) is None:
                finished = time.perf_counter()
                done = session.scalar(count_delivered) or 0
                break
    with engine.connect() as connection:
        database_after = server_cpu_seconds(connection)
    assert done == DELIVERIES, f"{DELIVERIES - done} deliveries were not delivered"
    rate = (DELIVERIES - first) / (finished - started)
    seconds = workers.finish()
    database = None
    if database_before is not None and database_after is not None:
        database = (database_after - database_before) / DELIVERIES * 1000
    return rate, seconds / DELIVERIES * 1000, database


def compared(
    measure: str,
    figures: tuple[dict[int, list[float]], dict[int, list[float]]],
    shown: tuple[str, str],
    setup: str,
    goal: str,
) -> list[tuple[str, ...]]:
    """A row per shape: our median and range beside the raw clients' (figures: ours, raw;
    shown: the number's format, the baseline's unit), and the ratio; `{requests}` in the
    setup is the shape's requests at once."""
    ours, baseline = figures
    figure, unit = shown
    return [
        (
            f"{measure} {SHAPE_NAMES[processes]}",
            figure.format(median(ours[processes])),
            spread(ours[processes]),
            f"raw httpx {figure.format(median(baseline[processes]))}{unit}"
            f" ({spread(baseline[processes])})",
            f"{median(ours[processes]) / median(baseline[processes]):.2f}x",
            setup.format(requests=CONCURRENCY * processes),
            goal,
        )
        for processes in SHAPES
    ]


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
            raw: dict[int, list[float]] = {n: [] for n in SHAPES}
            cpu_raw: dict[int, list[float]] = {n: [] for n in SHAPES}
            plain: dict[int, list[float]] = {n: [] for n in SHAPES}
            ours: dict[int, list[float]] = {n: [] for n in SHAPES}
            cpu_ours: dict[int, list[float]] = {n: [] for n in SHAPES}
            cpu_database: dict[int, list[float]] = {n: [] for n in SHAPES}
            workers = {processes: Workers(database_url, processes) for processes in SHAPES}
            clients = {processes: RawClients(url, payloads, processes) for processes in SHAPES}
            plain_clients = {
                processes: RawClients(url, payloads, processes, pinned=False)
                for processes in SHAPES
            }
            try:
                for processes in SHAPES:
                    pipeline_rate(engine, workers[processes])  # warm up, not counted
                for _ in range(RUNS):  # alternating, so all see the same machine
                    for processes in SHAPES:
                        rate, cpu = clients[processes].rate()
                        raw[processes].append(rate)
                        cpu_raw[processes].append(cpu)
                        plain[processes].append(plain_clients[processes].rate()[0])
                        rate, cpu, database = pipeline_rate(engine, workers[processes])
                        ours[processes].append(rate)
                        cpu_ours[processes].append(cpu)
                        if database is not None:
                            cpu_database[processes].append(database)
            finally:
                for running in workers.values():
                    running.stop()
                for raw_clients in (*clients.values(), *plain_clients.values()):
                    raw_clients.stop()
            engine.dispose()
    finally:
        receiver.kill()
        receiver.join()

    per_second, milliseconds = ("{:,.0f}", "/s"), ("{:.2f}", "")
    context = "for context: the goal is judged against the pinned raw clients above"
    rows = [
        *compared(
            f"deliveries/s, {DELIVERIES:,} support.assigned, signed, leased, recorded:",
            (ours, raw), per_second, f"{{requests}} requests at once, {TEAMS} endpoints", ">= 0.8x",
        ),
        *compared(
            "the same, beside raw httpx run plainly (not pinned):",
            (ours, plain), per_second, context, "-",
        ),
        *compared(
            "CPU per delivery (ms),",
            (cpu_ours, cpu_raw), milliseconds, "signing, leases, attempt rows", "-",
        ),
    ]  # fmt: skip
    rows += [
        (
            f"PostgreSQL CPU per delivery (ms), {SHAPE_NAMES[processes]}",
            f"{median(cpu_database[processes]):.2f}",
            spread(cpu_database[processes]),
            "raw httpx: no database",
            "-",
            "on the same 2 cores",
            "-",
        )
        for processes in SHAPES
        if cpu_database[processes]
    ]
    table(
        "Webhook deliveries (PostgreSQL, local receiver)",
        rows,
        ("measure", "median", "range", "baseline", "ratio", "setup", "goal"),
    )
    return rows


if __name__ == "__main__":
    main()
