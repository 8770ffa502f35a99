"""SIGKILL the notifier worker (and its pool) in the middle of a batch of deliveries, on
PostgreSQL + Redis with real API, matcher, notifier and beat processes: every delivery still
ends delivered, with exactly one recorded success per webhook-id. Receivers may see an id twice
(an attempt cut off between send and record); that is the documented at-least-once."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from httpserver import Received, webhook_receiver
from processes import Processes, descendants, environment, processes, wait_ready
from servers import free_port
from services.keys import create_key
from services.notifier.affinity import cpu_quota_set
from shared.db import make_engine
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import Delivery, DeliveryAttempt
from support import referral_body, unit_body

PEOPLE = 60  # 60 offer.created to the provider, 60 support.assigned to the team
ANSWERED_BEFORE_KILL = 30
NOTIFIER = ["worker", "--queues", "notifications", "--concurrency", "2"]


def kill_tree(group: Processes, name: str) -> None:
    """SIGKILL a worker as a crashed machine would: the main process and its pool at once."""
    process = group.started.pop(name)
    for pid in descendants(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def assert_sending_processes_pinned(group: Processes, name: str) -> None:
    """The pool processes that are sending each keep to one core, none the same one
    (services/notifier/affinity.py); a process that has not sent yet may run anywhere."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or cpu_quota_set():
        return  # nothing to pin to, or left to the scheduler (affinity.py)
    main = group.started[name].pid
    pinned = []
    for pid in descendants(main):
        with contextlib.suppress(ProcessLookupError):
            allowed = os.sched_getaffinity(pid)
            if pid != main and len(allowed) == 1:
                pinned.append(allowed)
            else:
                assert allowed == set(cores)
    assert pinned, "no sending process is pinned"
    assert len({core for allowed in pinned for core in allowed}) == len(pinned)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def make_keys(engine: Engine) -> dict[OrganizationKind, dict[str, str]]:
    with Session(engine) as session:
        keys = {
            kind: {
                "Authorization": "Bearer "
                + create_key(session, org=f"{kind}-org", kind=kind, role=Role(kind), region="north")
            }
            for kind in (
                OrganizationKind.outreach,
                OrganizationKind.housing_provider,
                OrganizationKind.support_provider,
            )
        }
        session.commit()
    return keys


def post_everything(
    base: str, keys: dict[OrganizationKind, dict[str, str]], url: str
) -> dict[str, str]:
    """Endpoints (offer.created for the provider, support.assigned for the team), a team, and
    PEOPLE units and referrals; the endpoints' secrets by id."""
    provider = keys[OrganizationKind.housing_provider]
    support = keys[OrganizationKind.support_provider]
    outreach = keys[OrganizationKind.outreach]
    with httpx.Client(base_url=base, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        secrets = {}
        for headers, event in ((provider, "offer.created"), (support, "support.assigned")):
            created = client.post(
                "/v1/webhook-endpoints", json={"url": url, "events": [event]}, headers=headers
            ).json()
            secrets[created["id"]] = created["secret"]
        client.post(
            "/v1/support-teams",
            json={"region": "north", "kind": "act", "capacity": 1000},
            headers=support,
        ).raise_for_status()

        def person(number: int) -> None:
            client.post("/v1/units", json=unit_body(), headers=provider).raise_for_status()
            client.post(
                "/v1/referrals",
                json=referral_body(),
                headers={**outreach, "Idempotency-Key": f"k{number}"},
            ).raise_for_status()

        list(pool.map(person, range(PEOPLE)))
    return secrets


def test_sigkill_mid_batch_every_delivery_ends_delivered_once(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = environment(
        database_url=postgres_url,
        broker_url=redis_url,
        data_dir=str(tmp_path),
        allow_private_webhook_targets="true",
        webhook_timeout_seconds="5",  # leases of a killed worker run out in 15 s
    )
    engine = make_engine(postgres_url)

    def count(*conditions: Any) -> int:
        with Session(engine) as session:
            query = select(func.count()).select_from(Delivery).where(*conditions)
            return session.scalar(query) or 0

    keys = make_keys(engine)
    # The first deliveries are answered at once; later ones are held until the kill, so the
    # worker dies with a batch in flight and more waiting behind it.
    answered, held = threading.Semaphore(ANSWERED_BEFORE_KILL), threading.Event()

    def answer(_: Received) -> int:
        if not answered.acquire(blocking=False):
            held.wait(30)
        return 200

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with webhook_receiver() as receiver, processes(env, tmp_path) as group:
        receiver.answer = answer
        group.start("api", ["api", "--port", str(port)])
        group.start("matcher", ["worker", "--queues", "matching,maintenance", "--name", "m@%h"])
        group.start("beat", ["beat"])
        try:
            wait_ready(base)
            secrets = post_everything(base, keys, receiver.url)
            group.start("notifier", [*NOTIFIER, "--name", "n1@%h"])
            wait_until(lambda: count() == 2 * PEOPLE, 90, "every event fanned out")
            wait_until(lambda: len(receiver.requests) > ANSWERED_BEFORE_KILL, 30, "a batch held")
            assert_sending_processes_pinned(group, "notifier")
            kill_tree(group, "notifier")
            delivered_at_kill = count(Delivery.status == "delivered")
            assert delivered_at_kill <= ANSWERED_BEFORE_KILL < 2 * PEOPLE
            held.set()
            group.start("notifier2", [*NOTIFIER, "--name", "n2@%h"])
            wait_until(
                lambda: count(Delivery.status == "delivered") == 2 * PEOPLE, 90, "all delivered"
            )
        except BaseException:
            print(group.logs())
            raise
        seen = list(receiver.requests)
    with Session(engine) as session:
        rows = session.scalars(select(Delivery)).all()
        successes = Counter(
            session.scalars(
                select(DeliveryAttempt.delivery_id).where(
                    DeliveryAttempt.status_code >= 200, DeliveryAttempt.status_code < 300
                )
            )
        )
    engine.dispose()
    expected = {f"msg_{row.id}": row for row in rows}
    ids = Counter(request.headers["webhook-id"] for request in seen)
    assert set(ids) == set(expected)  # every delivery reached its receiver, nothing else did
    assert all(successes[row.id] == 1 for row in rows), successes  # one recorded 2xx each
    for request in seen:  # duplicates, if any, are the same signed message again
        secret = secrets[expected[request.headers["webhook-id"]].endpoint_id]
        Webhook(secret).verify(request.body, request.headers)
    print(
        f"killed with {delivered_at_kill}/{2 * PEOPLE} delivered; receivers saw "
        f"{sum(ids.values()) - len(ids)} duplicate(s), all with their first id"
    )
