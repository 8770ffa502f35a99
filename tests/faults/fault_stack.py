"""The whole system as real processes on loopback, with handles to break each part of it:
PostgreSQL (durable commits) and Redis (AOF) started here, the API (2 uvicorn workers), 2
matcher and 2 notifier Celery workers and beat, and the support teams' webhook receiver."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fault_receiver import FaultReceiver
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from processes import Processes, descendants, environment, run, wait_ready
from servers import (
    PostgresServer,
    RedisServer,
    _launch_redis,
    free_port,
    start_postgres,
    start_redis,
)
from services.keys import create_key
from shared.db import make_engine
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import Delivery, OutboxEvent, RegionMatching

HOOKS = Path(__file__).resolve().parent / "hooks"
REGIONS = ("north", "south")
POISON_REGION = "poison"  # a matching round here kills its worker (hooks/sitecustomize.py)
MATCHERS = ("matcher-1", "matcher-2")
NOTIFIERS = ("notifier-1", "notifier-2")
TEAM_KINDS = ("act", "icm", "floating")


@dataclass
class FaultStack:
    base: Path
    unfinished_after_seconds: int
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    group: Processes | None = None
    engine: Engine | None = None
    api_url: str = ""
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    receiver: FaultReceiver = field(default_factory=FaultReceiver)
    publish_budget: Path = field(init=False)
    commands: dict[str, list[str]] = field(default_factory=dict)
    # As compose's `restart: unless-stopped` does: a process that exits is started again.
    restarts: Counter[str] = field(default_factory=Counter)
    supervising: threading.Event = field(default_factory=threading.Event)
    group_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.publish_budget = self.base / "kill-before-publish"
        self.publish_budget.write_text("0")

    # --- starting and stopping -------------------------------------------------------------
    def start(self) -> None:
        self.postgres = start_postgres(self.base, durable=True)
        self.redis = start_redis(self.base, appendonly=True)
        url, port = self.postgres.url, free_port()
        env = environment(
            database_url=url,
            broker_url=self.redis.url,
            data_dir=str(self.base / "data"),
            allow_loopback_webhook_targets="true",
            relay_after_seconds="2",
            relay_unfinished_after_seconds=str(self.unfinished_after_seconds),
            webhook_timeout_seconds="5",
            rate_limit_per_minute="1000000",
            log_level="WARNING",
        )
        env["PYTHONPATH"] = f"{HOOKS}{os.pathsep}{env['PYTHONPATH']}"
        env["HF_FAULT_KILL_BEFORE_PUBLISH"] = str(self.publish_budget)
        env["HF_FAULT_POISON_REGION"] = POISON_REGION
        run(["migrate"], env)
        self.engine = make_engine(url)
        self.api_url = f"http://127.0.0.1:{port}"
        self.group = Processes(env, self.base)
        worker = ["worker", "--concurrency", "2"]
        self.commands = {
            "api": ["api", "--port", str(port), "--workers", "2"],
            **{
                n: [*worker, "--queues", "matching,maintenance", "--name", f"{n}@%h"]
                for n in MATCHERS
            },
            **{n: [*worker, "--queues", "notifications", "--name", f"{n}@%h"] for n in NOTIFIERS},
            "beat": ["beat"],
        }
        for name, args in self.commands.items():
            self.group.start(name, args)
        self.receiver.up()
        wait_ready(self.api_url)
        self._organizations()
        self.supervising.set()
        threading.Thread(target=self._supervise, name="supervisor", daemon=True).start()

    def _supervise(self) -> None:
        assert self.group is not None
        while self.supervising.is_set():
            with self.group_lock:
                for name, process in list(self.group.started.items()):
                    if process.poll() is not None and self.supervising.is_set():
                        self.restarts[name] += 1
                        self.group.start(name, self.commands[name])
            time.sleep(0.5)

    def stop(self) -> None:
        self.supervising.clear()
        if self.group is not None:
            with self.group_lock:
                self.group.stop_all()
        self.receiver.down()
        if self.engine is not None:
            self.engine.dispose()
        for server in (self.redis, self.postgres):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()

    def _organizations(self) -> None:
        """Keys for every kind of client; a support team of each kind with an endpoint each."""
        assert self.engine is not None
        with Session(self.engine) as session:

            def key(org: str, kind: OrganizationKind, role: Role, regions: tuple[str, ...]) -> str:
                plain = ""
                for region in regions:
                    plain = create_key(session, org=org, kind=kind, role=role, region=region)
                return plain

            plain = {
                "outreach": key("street team", OrganizationKind.outreach, Role.outreach, REGIONS),
                "poison": key("poison team", OrganizationKind.outreach, Role.outreach, (POISON_REGION,)),
                "provider": key("homes", OrganizationKind.housing_provider, Role.housing_provider, REGIONS),
                "admin": key("operations", OrganizationKind.operations, Role.admin, REGIONS),
                **{
                    kind: key(f"{kind} team", OrganizationKind.support_provider, Role.support_provider, REGIONS)
                    for kind in TEAM_KINDS
                },
            }  # fmt: skip
            session.commit()
        self.keys = {name: {"Authorization": f"Bearer {value}"} for name, value in plain.items()}
        with httpx.Client(base_url=self.api_url, timeout=30) as client:
            for kind in TEAM_KINDS:
                for region in REGIONS:
                    team = {"region": region, "kind": kind, "areas": [], "capacity": 10_000}
                    answer = client.post("/v1/support-teams", json=team, headers=self.keys[kind])
                    assert answer.status_code == 201, answer.text
                hook = {"url": f"{self.receiver.url}/{kind}", "events": ["support.assigned"]}
                created = client.post("/v1/webhook-endpoints", json=hook, headers=self.keys[kind])
                assert created.status_code == 201, created.text
                self.receiver.secrets[f"/hooks/{kind}"] = created.json()["secret"]

    # --- faults ------------------------------------------------------------------------------
    def pool_children(self, name: str) -> list[int]:
        assert self.group is not None
        return [pid for pid in descendants(self.group.started[name].pid)[:-1]]

    def kill_pool_child(self, name: str) -> int | None:
        """SIGKILL one of a worker's pool processes (under load, most are mid-task)."""
        children = self.pool_children(name)
        if not children:
            return None
        victim = random.choice(children)
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        return victim

    def kill_tree(self, name: str) -> None:
        """SIGKILL a whole worker (main process and pool) as a lost machine would; restart it."""
        assert self.group is not None
        with self.group_lock:
            process = self.group.started.pop(name)
            for pid in descendants(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.wait(timeout=10)
            self.group.start(name, self.commands[name])

    def pause_workers(self, sig: int = signal.SIGSTOP) -> None:
        """Freeze (or, with SIGCONT, thaw) every worker process: nothing is consumed meanwhile."""
        assert self.group is not None
        for name in (*MATCHERS, *NOTIFIERS):
            for pid in descendants(self.group.started[name].pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    def arm_kill_before_publish(self, kills: int) -> None:
        self.publish_budget.write_text(str(kills))

    def kills_before_publish_left(self) -> int:
        return int(self.publish_budget.read_text().strip() or 0)

    def redis_down(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def redis_up(self, *, keep_data: bool = True) -> None:
        assert self.redis is not None
        if not keep_data:
            import shutil

            shutil.rmtree(self.redis.data_dir, ignore_errors=True)
        self.redis.pid = _launch_redis(self.redis.data_dir, self.redis.port, appendonly=True)

    # --- reading the database ----------------------------------------------------------------
    def scalar(self, query: Any) -> Any:
        assert self.engine is not None
        with Session(self.engine) as session:
            return session.scalar(query)

    def backlog(self, settled: tuple[str, ...] = ()) -> dict[str, int]:
        """What is still to do: events not acted on, deliveries not settled, regions behind."""
        open_deliveries = tuple(s for s in ("pending", "sending", "failed") if s not in settled)
        return {
            "events": self.scalar(
                select(func.count()).select_from(OutboxEvent).where(
                    OutboxEvent.processed_at.is_(None),
                    func.coalesce(OutboxEvent.region, "") != POISON_REGION,
                )
            ) or 0,
            "deliveries": self.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status.in_(open_deliveries))
            ) or 0,
            "regions": self.scalar(
                select(func.count()).select_from(RegionMatching).where(
                    RegionMatching.requested > RegionMatching.completed,
                    RegionMatching.region != POISON_REGION,
                )
            ) or 0,
        }  # fmt: skip

    def stuck(self) -> str:
        """The events not acted on, for a failure's message."""
        assert self.engine is not None
        with Session(self.engine) as session:
            rows = session.execute(
                select(OutboxEvent.topic, OutboxEvent.published_at.is_(None), func.count())
                .where(OutboxEvent.processed_at.is_(None))
                .group_by(OutboxEvent.topic, OutboxEvent.published_at.is_(None))
            ).all()
        return ", ".join(
            f"{topic} {'unpublished' if unpublished else 'published'}: {n}"
            for topic, unpublished, n in rows
        )

    def wait_quiet(
        self,
        timeout: float,
        *,
        busy: Callable[[], bool] = lambda: False,
        settled: tuple[str, ...] = (),
    ) -> float:
        """Seconds until nothing is left to do (twice in a row, 1 s apart)."""
        started = time.monotonic()
        calm = 0
        while calm < 2:
            if time.monotonic() - started > timeout:
                assert self.group is not None
                raise TimeoutError(
                    f"not quiet after {timeout} s: {self.backlog()}\n{self.group.logs()}"
                )
            calm = calm + 1 if not busy() and not any(self.backlog(settled).values()) else 0
            time.sleep(1)
        return time.monotonic() - started
