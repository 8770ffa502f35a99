"""The scenarios, run one after another on one running system, each under load, each ending
with the system quiet again; then every invariant is checked from the database and from what
the webhook receiver got. `run` returns the summary table's rows."""

from __future__ import annotations

import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fault_load import Clients, Load
from fault_stack import MATCHERS, NOTIFIERS, POISON_REGION, REGIONS, FaultStack
from sqlalchemy import Interval, func, literal, select, update
from sqlalchemy.orm import Session

from oracle import check_invariants
from shared.models import Delivery, OutboxEvent, Referral, SupportAssignment, utcnow
from shared.redelivery import MAX_STARTS

Row = tuple[str, str, str, str]


@dataclass(frozen=True)
class Profile:
    """How hard: the short version runs inside `make test`, the full one in `make faults`."""

    name: str
    referrals: dict[str, int]  # per scenario
    seconds: dict[str, float]  # load duration per scenario
    redis_down_seconds: float
    postgres_down_seconds: float
    child_kills: int  # per worker kind
    unfinished_after_seconds: int
    quiet_timeout: float
    actions_every: int = 10  # referrals between rounds of the other clients' actions
    homes_every: int = 2  # referrals per new home


SHORT = Profile(
    name="short",
    referrals={"kills": 100, "api": 40, "postgres": 50, "redis_down": 40, "redis_lost": 40, "receiver": 30},
    seconds={"kills": 9, "api": 4, "postgres": 6, "redis_down": 7, "redis_lost": 4, "receiver": 4},
    redis_down_seconds=5,
    postgres_down_seconds=3,
    child_kills=2,
    unfinished_after_seconds=6,
    quiet_timeout=120,
)  # fmt: skip
FULL = Profile(
    name="full",
    referrals={"kills": 2500, "api": 1000, "postgres": 1500, "redis_down": 2000, "redis_lost": 1500, "receiver": 1500},
    seconds={"kills": 230, "api": 90, "postgres": 140, "redis_down": 190, "redis_lost": 80, "receiver": 140},
    redis_down_seconds=60,
    postgres_down_seconds=20,
    child_kills=8,
    unfinished_after_seconds=20,
    quiet_timeout=420,
    actions_every=25,
    homes_every=4,
)  # fmt: skip


class Run:
    def __init__(self, stack: FaultStack, profile: Profile) -> None:
        self.stack, self.profile = stack, profile
        self.clients = Clients(stack, run=f"f{int(time.time())}")
        self.next_number = 0
        self.rows: list[Row] = []
        self.simulated = timedelta(0)
        self.poisoned = False
        self.current: Load

    def load(self, scenario: str, *, urgent: bool = False) -> Load:
        count = self.profile.referrals[scenario]
        load = Load(
            self.clients,
            referrals=count,
            seconds=self.profile.seconds[scenario],
            first=self.next_number,
            urgent=urgent,
            actions_every=self.profile.actions_every,
            homes_every=self.profile.homes_every,
        )
        self.next_number += count
        self.current = load
        return load

    def quiet(self, load: Load | None = None) -> float:
        """Seconds until quiet; a delivery left failing (an attempt cut off by a fault) waits
        for its next attempt on the schedule, reached in simulated time."""
        started = time.monotonic()
        busy = load.busy if load else lambda: False
        self.stack.wait_quiet(self.profile.quiet_timeout, busy=busy, settled=("failed",))
        while True:
            due = self.stack.scalar(
                select(func.min(Delivery.next_attempt_at)).where(Delivery.status == "failed")
            )
            if due is None:
                return time.monotonic() - started
            self.advance(max(due - utcnow(), timedelta(0)))
            self.attempted()

    def answers(self, before: Counter[str]) -> str:
        now = self.clients.tally.statuses
        changed = {k: now[k] - before.get(k, 0) for k in now if now[k] - before.get(k, 0)}
        return ", ".join(f"{k}: {v}" for k, v in sorted(changed.items()))

    def row(self, scenario: str, load: str, faults: str, result: str) -> None:
        self.rows.append((scenario, load, faults, result))
        print(f"[faults] {time.strftime('%H:%M:%S')} {scenario}: {faults} -> {result}", flush=True)

    # --- scenarios --------------------------------------------------------------------------------
    def worker_kills(self) -> None:
        before = Counter(self.clients.tally.statuses)
        kills = Counter[str]()
        with (load := self.load("kills")):
            pause = self.profile.seconds["kills"] / (2 * self.profile.child_kills + 2)
            for round_number in range(self.profile.child_kills):
                time.sleep(pause)
                for name in (MATCHERS[round_number % 2], NOTIFIERS[round_number % 2]):
                    if self.stack.kill_pool_child(name):
                        kills[name.split("-")[0] + " pool process"] += 1
                time.sleep(pause)
            for name in (MATCHERS[0], NOTIFIERS[0]):  # a whole worker, as a lost machine
                self.stack.kill_tree(name)
                kills[name.split("-")[0] + " whole worker"] += 1
        quiet = self.quiet(load)
        faults = ", ".join(f"{v} x SIGKILL {k}" for k, v in sorted(kills.items()))
        self.row(
            "workers SIGKILLed mid-task",
            self.load_text("kills", before),
            faults,
            f"quiet {quiet:.0f} s after",
        )

    def api_kill_before_publish(self) -> None:
        before = Counter(self.clients.tally.statuses)
        armed, since = 2, utcnow()
        self.stack.arm_kill_before_publish(armed)
        with (load := self.load("api")):
            pass
        killed = armed - self.stack.kills_before_publish_left()
        self.stack.arm_kill_before_publish(0)
        quiet = self.quiet(load)
        late = self.published_late(since)
        assert killed >= 1, "no API process was killed between commit and publish"
        self.row(
            "API SIGKILLed between commit and publish",
            self.load_text("api", before),
            f"{killed} x SIGKILL of an API worker after commit, before publish",
            f"{late} events published late by the relay; quiet {quiet:.0f} s after",
        )

    def published_late(self, since: Any, after: timedelta = timedelta(seconds=1.5)) -> int:
        """Events created since then that the relay published (again), not their request."""
        assert self.stack.engine is not None
        with Session(self.stack.engine) as session:
            times = session.execute(
                select(OutboxEvent.created_at, OutboxEvent.published_at).where(
                    OutboxEvent.created_at >= since
                )
            ).tuples()
            return sum(
                1
                for made, sent in times
                if sent is not None and sent - made > timedelta(seconds=1.5)
            )

    def postgres_restart(self) -> None:
        assert self.stack.postgres is not None
        before = Counter(self.clients.tally.statuses)
        with (load := self.load("postgres")):
            time.sleep(self.profile.seconds["postgres"] / 3)
            self.stack.postgres.halt("immediate")
            time.sleep(self.profile.postgres_down_seconds)
            self.stack.postgres.resume()
        quiet = self.quiet(load)
        unavailable = self.clients.tally.statuses["503"] - before.get("503", 0)
        server_errors = self.clients.tally.statuses["500"] - before.get("500", 0)
        assert server_errors == 0, "the API answered 500 while the database was down"
        self.row(
            "PostgreSQL crash-restarted under load",
            self.load_text("postgres", before),
            f"pg_ctl stop -m immediate, down {self.profile.postgres_down_seconds:.0f} s, restart",
            f"{unavailable} x 503 while down, 0 x 500; quiet {quiet:.0f} s after",
        )

    def redis_down(self) -> None:
        before = Counter(self.clients.tally.statuses)
        with (load := self.load("redis_down")):
            time.sleep(1)
            self.stack.redis_down()
            time.sleep(self.profile.redis_down_seconds)
            back = utcnow()
            self.stack.redis_up(keep_data=True)
            resumed, drained = self.resumed_after(back)
        quiet = self.quiet(load)
        assert resumed <= 60, f"consumption resumed {resumed:.0f} s after Redis came back"
        assert drained < 300, f"the outage backlog was not consumed {drained:.0f} s after"
        self.row(
            "Redis stopped and restarted (AOF)",
            self.load_text("redis_down", before),
            f"Redis down {self.profile.redis_down_seconds:.0f} s",
            f"consumption resumed {resumed:.1f} s after Redis returned, outage backlog consumed after {drained:.1f} s; quiet {quiet:.0f} s after",
        )

    def resumed_after(self, back: Any) -> tuple[float, float]:
        """Seconds until consumption resumed (the first event of the outage acted on by all its
        consumers) and until the whole outage backlog was."""
        started, resumed, first = time.monotonic(), None, None
        while time.monotonic() - started < 300:
            left = self.stack.scalar(
                select(func.count()).select_from(OutboxEvent).where(
                    OutboxEvent.processed_at.is_(None),
                    OutboxEvent.created_at < back,
                    func.coalesce(OutboxEvent.region, "") != POISON_REGION,
                )
            )  # fmt: skip
            first = left if first is None else first
            if resumed is None and (left < first or not left):
                resumed = time.monotonic() - started
            if not left:
                return resumed, time.monotonic() - started
            time.sleep(0.5)
        return resumed if resumed is not None else float("inf"), time.monotonic() - started

    def redis_lost(self) -> None:
        """Messages waiting in Redis when it loses its data: the workers are frozen while the
        load is posted, so its events' messages are certainly in Redis when it is wiped."""
        before, since = Counter(self.clients.tally.statuses), utcnow()
        self.stack.pause_workers()
        try:
            with self.load("redis_lost"):
                pass
            self.stack.redis_down()
            self.stack.redis_up(keep_data=False)
        finally:
            self.stack.pause_workers(signal.SIGCONT)
        quiet = self.quiet()
        # Each event is acted on all the same: by a task the frozen workers had already taken,
        # or found again by a later round of its region (which records the region's unrecorded
        # triggers and forwards them to the notifier), or by the outbox relay (re-published to
        # the consumers that never recorded it).
        unprocessed = self.stack.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.created_at >= since, OutboxEvent.processed_at.is_(None))
        )
        made = self.stack.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.created_at >= since)
        )
        assert made >= self.profile.referrals["redis_lost"] and unprocessed == 0, (
            f"{unprocessed} of {made} events whose messages were lost were never acted on"
        )
        resent = self.published_late(
            since, after=timedelta(seconds=self.profile.unfinished_after_seconds)
        )
        self.row(
            "Redis restarted with its data lost",
            self.load_text("redis_lost", before),
            "workers frozen, load posted, Redis data directory (AOF) wiped, workers thawed",
            f"all {made} events acted on, {resent} of them re-published by the outbox relay;"
            f" quiet {quiet:.0f} s after",
        )

    def receiver_down(self) -> None:
        before = Counter(self.clients.tally.statuses)
        started = utcnow()
        self.stack.receiver.down()
        with (load := self.load("receiver", urgent=True)):  # new people offered homes at once
            pass
        self.stack.wait_quiet(self.profile.quiet_timeout, busy=load.busy, settled=("failed",))
        for step in (timedelta(minutes=5), timedelta(minutes=5)):  # 10 minutes pass, still down
            self.advance(step)
            self.attempted()
        self.stack.receiver.up()
        self.advance(timedelta(minutes=30))  # the next attempt on the schedule, receiver back
        quiet = self.quiet(load)
        retried = self.stack.scalar(
            select(func.count()).select_from(Delivery).where(
                Delivery.created_at >= started, Delivery.attempts >= 3, Delivery.status == "delivered"
            )
        )  # fmt: skip
        assert self.stack.engine is not None
        with Session(self.stack.engine) as session:
            shape = Counter(
                session.execute(
                    select(Delivery.status, Delivery.attempts).where(Delivery.created_at >= started)
                ).tuples()
            )
        assert retried, f"no delivery was made while the receiver was down: {shape}"
        self.row(
            "webhook receiver down 10 min (simulated)",
            self.load_text("receiver", before),
            "receiver port closed for 10 min of simulated time",
            f"{retried} deliveries refused 3+ times while down, all delivered when it returned; quiet {quiet:.0f} s after",
        )

    def attempted(self) -> None:
        """Wait until every delivery that is due has had its attempt."""
        deadline = time.monotonic() + self.profile.quiet_timeout
        while time.monotonic() < deadline:
            self.stack.wait_quiet(self.profile.quiet_timeout, settled=("failed",))
            due = self.stack.scalar(
                select(func.count()).select_from(Delivery).where(
                    Delivery.status == "failed", Delivery.next_attempt_at <= utcnow()
                )
            )  # fmt: skip
            if not due:
                return
            time.sleep(1)
        raise TimeoutError("due deliveries were not attempted")

    def advance(self, step: timedelta) -> None:
        """Simulated time: the retry schedule's clock moves on by `step`."""
        assert self.stack.engine is not None
        with Session(self.stack.engine) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.status == "failed", Delivery.next_attempt_at.is_not(None))
                .values(next_attempt_at=Delivery.next_attempt_at - literal(step, Interval()))
            )
            session.commit()
        self.simulated += step

    def poison(self) -> None:
        """A referral whose matching round kills its worker; checked once the others ran."""
        self.clients.post_referral(self.next_number, who="poison", region=POISON_REGION)
        self.next_number += 1
        self.poisoned = True

    def poison_dead(self) -> None:
        deadline = time.monotonic() + 120
        dead: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not dead:
            answer = self.clients.call("GET", "/v1/ops/queues", "admin")
            if answer is not None and answer.status_code == 200:
                dead = [
                    t for t in answer.json()["dead_tasks"] if t["task"] == "matcher.handle_event"
                ]
            time.sleep(1)
        assert dead, "the task that kills its worker was never recorded dead"
        # later deliveries of it (the relay re-publishes what is unfinished) are counted, not run
        assert dead[0]["starts"] > MAX_STARTS and f"died {MAX_STARTS} times" in dead[0]["cause"]
        self.row(
            "a task that crashes its worker every time",
            "1 referral in a region whose round SIGKILLs its worker",
            f"{MAX_STARTS} worker deaths on the same task",
            f"dead after {MAX_STARTS} redeliveries, shown in /v1/ops/queues: {dead[0]['cause'][:60]}...",
        )

    def load_text(self, scenario: str, before: Counter[str]) -> str:
        count, took = self.profile.referrals[scenario], self.current.elapsed
        return f"{count} referrals in {took:.0f} s ({count / took:.1f}/s); answers: {self.answers(before)}"

    # --- the checks -------------------------------------------------------------------------------
    def check(self) -> None:
        self.quiet()
        assert self.stack.engine is not None
        clients = self.clients
        with Session(self.stack.engine) as session:
            stored = Counter(
                name
                for name in session.scalars(
                    select(Referral.person_name).where(
                        Referral.person_name.like(f"{clients.run}-%")
                    )
                )
            )
            ids = {
                name: referral_id
                for name, referral_id in session.execute(
                    select(Referral.person_name, Referral.id).where(
                        Referral.person_name.in_(list(clients.acknowledged))
                    )
                )
            }
            statuses = Counter(
                session.scalars(
                    select(Referral.status).where(
                        Referral.id.in_(list(clients.acknowledged.values()))
                    )
                )
            )
            lost = [
                name
                for name, referral_id in clients.acknowledged.items()
                if ids.get(name) != referral_id
            ]
            twice = [name for name, count in stored.items() if count > 1]
            assert not lost, f"{len(lost)} acknowledged referrals lost: {lost[:5]}"
            assert not twice, f"{len(twice)} referrals stored twice: {twice[:5]}"
            for region in REGIONS:
                check_invariants(session, region, date.today())
            deliveries = list(
                session.scalars(select(Delivery).where(Delivery.event_type == "support.assigned"))
            )
            assigned = session.scalar(
                select(func.count())
                .select_from(SupportAssignment)
                .where(SupportAssignment.team_id.is_not(None))
            )
        not_delivered = [d.id for d in deliveries if d.status != "delivered"]
        received = self.stack.receiver.ids_of("support.assigned")
        missing = [d.id for d in deliveries if f"msg_{d.id}" not in received]
        receipts = sum(self.stack.receiver.receipts[f"msg_{d.id}"] for d in deliveries)
        assert not not_delivered, f"{len(not_delivered)} support.assigned not delivered"
        assert not missing, f"{len(missing)} support.assigned never reached the receiver"
        assert len(deliveries) == assigned, (
            f"{assigned} assignments but {len(deliveries)} deliveries"
        )
        assert self.stack.receiver.refused == 0, "a webhook failed signature verification"
        acknowledged = len(clients.acknowledged)
        self.row(
            "after all scenarios",
            f"{self.next_number} referrals posted, {acknowledged} acknowledged (2xx); answers: {self.answers(Counter())}",
            f"simulated time {str(self.simulated).split('.')[0]}; processes restarted by the supervisor: "
            f"{dict(self.stack.restarts) or 'none'}",
            f"2xx lost 0, stored twice 0, given up {len(clients.unanswered)}; statuses {dict(statuses)}; "
            f"0 units or persons with two live offers, nobody waiting fits an available unit; "
            f"support.assigned {len(deliveries)}/{assigned} delivered and verified, "
            f"{len(received & {f'msg_{d.id}' for d in deliveries})} effects (one per webhook-id), "
            f"{receipts - len(deliveries)} duplicate receipts",
        )

    def everything(self, only: str = "") -> list[Row]:
        """Every scenario in turn (or those named in `only`, comma-separated), then the checks."""
        scenarios = {
            "poison": self.poison,
            "kills": self.worker_kills,
            "api": self.api_kill_before_publish,
            "postgres": self.postgres_restart,
            "redis_down": self.redis_down,
            "redis_lost": self.redis_lost,
            "receiver": self.receiver_down,
        }
        for name, scenario in scenarios.items():
            if not only or name in only.split(","):
                scenario()
        if self.poisoned:
            self.poison_dead()
        self.check()
        return self.rows
