"""A worker process's sending: a bounded number of attempts in flight on a thread pool, outcomes
recorded in batches, and each slot an endpoint frees refilled with that endpoint's next due
delivery. Tasks only claim and hand over, so a receiver that hangs holds its own slots (at most
LANE_LIMIT of them) and never a Celery worker or anyone else's delivery.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from services.notifier import clients, ledger
from services.notifier import delivery as webhook
from services.notifier.affinity import pin_to_one_core, pool_index
from services.notifier.outcomes import Result, record
from shared.config import get_settings
from shared.db import make_engine, unit_of_work
from shared.models import utcnow

log = logging.getLogger(__name__)

CAPACITY = 256  # claims held per worker process: sending, waiting in a lane, or not yet recorded
RECORD_BATCH = 200
# One recording thread, whose batches grow while it waits on the database, and which lingers a
# little for more when a batch is small: a record-and-refill transaction costs about the same
# CPU for 5 attempts as for 60, and in one process that CPU is taken from sending. Lanes are
# deep enough (ledger.py) that the linger never leaves a connection idle.
RECORDERS = 1
RECORD_LINGER_SECONDS = 0.01  # waiting for more only while the batch is under RECORD_TARGET
RECORD_TARGET = 16
RECORD_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0)  # then give up: the lease runs out, the sweep resends
SLOT_WAIT_SECONDS = 0.2  # a saturated process hands the rest back at once (due again)

P = ParamSpec("P")
T = TypeVar("T")
Send = Callable[[ledger.Claim], webhook.Outcome]


def send_claim(claim: ledger.Claim) -> webhook.Outcome:
    """One attempt through this process's client for the endpoint."""
    return webhook.send(
        claim.message,
        claim.url,
        http=clients.client_for(claim.endpoint_id, claim.url),
        timeout=get_settings().webhook_timeout_seconds,
        now=utcnow(),
    )


@dataclass
class Lease:
    """Slots to claim with elsewhere (Sender.leasing), and the claims made with them."""

    limit: int
    held: Counter[str]
    claims: list[ledger.Claim] = field(default_factory=list)

    def start(self, claims: list[ledger.Claim]) -> None:
        self.claims = claims


class Sender:
    """Bounded in-flight webhook attempts for one process."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        capacity: int = CAPACITY,
        send: Send = send_claim,
    ) -> None:
        self.sessions = sessions
        self.capacity = capacity
        self.send = send
        self._free = capacity
        self._changed = threading.Condition()
        self._results: queue.SimpleQueue[Result | None] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(max_workers=capacity, thread_name_prefix="webhook")
        # Per endpoint: how many of its claims are being sent, and the claimed ones waiting.
        self._sending: Counter[str] = Counter()
        self._lanes: dict[str, deque[ledger.Claim]] = {}
        self._lanes_lock = threading.Lock()
        # Claims are made one at a time in a process, each seeing the lanes the one before it
        # filled, so no lane outgrows its leases.
        self._claiming = threading.Lock()
        self._recorders = [
            threading.Thread(target=self._record_loop, name=f"webhook-record-{n}", daemon=True)
            for n in range(RECORDERS)
        ]
        for recorder in self._recorders:
            recorder.start()

    def _transaction(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with unit_of_work(self.sessions) as session:
            return work(session, *args, **kwargs)

    def _reserve(self, wanted: int, wait: float) -> int:
        """Up to `wanted` free slots, waiting up to `wait` seconds for at least one."""
        if wanted <= 0:
            return 0
        with self._changed:
            self._changed.wait_for(lambda: self._free > 0, timeout=wait)
            granted = min(wanted, self._free)
            self._free -= granted
            return granted

    def _release(self, count: int) -> None:
        if count:
            with self._changed:
                self._free += count
                self._changed.notify_all()

    def deliver(
        self,
        delivery_ids: Sequence[str],
        *,
        stamp: datetime | None = None,
        wait: float = SLOT_WAIT_SECONDS,
    ) -> int:
        """Claim what is due among these deliveries, as far as slots allow, and start sending;
        returns how many started. What cannot start now stays due for the sweep."""
        slots = self._reserve(len(delivery_ids), wait)
        with self._claiming:
            try:
                claims = self._transaction(
                    ledger.claim,
                    delivery_ids,
                    now=utcnow(),
                    limit=slots,
                    stamp=stamp,
                    held=self._held(),
                )
            except BaseException:
                self._release(slots)
                raise
            self._release(slots - len(claims))
            self._start(claims)
        return len(claims)

    @contextmanager
    def leasing(self, wanted: int) -> Iterator[Lease]:
        """Claims made elsewhere, in a transaction of the caller's (fanout.fan_out_and_claim):
        up to `wanted` free slots, without waiting, as the Lease's `limit`, with what the
        process holds per endpoint; the claims handed to `start` are sent, and the slots they
        did not use are freed, however the block ends. Claims are made one at a time in a
        process (as `deliver` makes them)."""
        slots = self._reserve(wanted, wait=0)
        with self._claiming:
            lease = Lease(slots, self._held())
            try:
                yield lease
            finally:
                self._release(slots - len(lease.claims))
                self._start(lease.claims)

    def _held(self) -> Counter[str]:
        """Claims held unsent or being sent, per endpoint."""
        with self._lanes_lock:
            held = Counter(self._sending)
            for endpoint_id, lane in self._lanes.items():
                held[endpoint_id] += len(lane)
            return held

    def _start(self, claims: list[ledger.Claim]) -> None:
        """Send at most SENDING_PER_ENDPOINT claims of an endpoint at once; the rest wait in
        its lane and go out as soon as one of its requests finishes, without waiting for the
        database (claims run ahead of sends, so recording never stalls the pipe)."""
        ready: list[ledger.Claim] = []
        with self._lanes_lock:
            for claim in claims:
                if self._sending[claim.endpoint_id] < ledger.SENDING_PER_ENDPOINT:
                    self._sending[claim.endpoint_id] += 1
                    ready.append(claim)
                else:
                    self._lanes.setdefault(claim.endpoint_id, deque()).append(claim)
        for claim in ready:
            self._pool.submit(self._run_lane, claim)

    def _run_lane(self, claim: ledger.Claim) -> None:
        current: ledger.Claim | None = claim
        while current is not None:
            self._attempt(current)
            endpoint_id = current.endpoint_id
            with self._lanes_lock:
                lane = self._lanes.get(endpoint_id)
                if lane:
                    current = lane.popleft()
                else:
                    self._lanes.pop(endpoint_id, None)
                    self._sending[endpoint_id] -= 1
                    if not self._sending[endpoint_id]:
                        del self._sending[endpoint_id]
                    current = None

    def _attempt(self, claim: ledger.Claim) -> None:
        try:
            outcome = self.send(claim)
        except Exception as error:  # a bug must not leak the slot
            log.exception("webhook attempt failed unexpectedly")
            outcome = webhook.Outcome(False, None, f"{type(error).__name__}: {error}", 0.0)
        self._results.put((claim, outcome))

    def _record_loop(self) -> None:
        closing = False
        while not closing:
            batch, closing = self._next_batch()
            if batch and closing:
                self._record(batch)
                self._release(len(batch))
            elif batch:
                self._record_and_refill(batch)

    def _next_batch(self) -> tuple[list[Result], bool]:
        """The results to record together, and whether the sender is closing: the first to
        come and all that have come since; while that is under RECORD_TARGET, what else comes
        within RECORD_LINGER_SECONDS, unless every attempt this process holds has answered
        (then waiting could bring nothing)."""
        first = self._results.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + RECORD_LINGER_SECONDS
        while len(batch) < RECORD_BATCH:
            try:
                waiting = self._results.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0 or len(batch) >= min(RECORD_TARGET, self.in_flight()):
                    break
                try:  # (only this thread releases slots: in_flight cannot fall meanwhile)
                    waiting = self._results.get(timeout=left)
                except queue.Empty:
                    break
            if waiting is None:
                return batch, True
            batch.append(waiting)
        return batch, False

    def _record_and_refill(self, batch: list[Result]) -> None:
        """Record a batch and, in the same transaction, lease the next due deliveries of the
        endpoints it frees: their slots pass straight on, and one commit serves both."""
        freed = sorted({claim.endpoint_id for claim, _ in batch})
        with self._claiming:
            held = self._held()
            room = sum(max(0, ledger.LANE_LIMIT - held[endpoint_id]) for endpoint_id in freed)
            slots = len(batch) + self._reserve(room - len(batch), wait=0)
            try:
                claims = self._transaction(_record_then_claim, batch, freed, slots, held)
            except Exception:
                log.warning("recording with a refill failed; recording alone", exc_info=True)
                claims = None
            if claims is not None:
                self._release(slots - len(claims))
                self._start(claims)
                return
        self._record(batch)  # (outside the lock: it may wait and retry for seconds)
        self._release(slots)

    def _record(self, batch: list[Result]) -> None:
        for pause in (*RECORD_RETRIES, None):
            try:
                self._transaction(record, batch, now=utcnow())
                return
            except Exception:
                if pause is None:
                    log.exception("gave up recording %d attempts; they will be resent", len(batch))
                    return
                log.warning("recording attempts failed; retrying in %s s", pause, exc_info=True)
                time.sleep(pause)

    def in_flight(self) -> int:
        with self._changed:
            return self.capacity - self._free

    def drain(self, timeout: float) -> bool:
        """Wait until every attempt started here is recorded; False if time ran out."""
        with self._changed:
            return self._changed.wait_for(lambda: self._free == self.capacity, timeout=timeout)

    def close(self, timeout: float) -> None:
        """Finish what is in flight (up to `timeout`), then stop the threads."""
        self.drain(timeout)
        for _ in self._recorders:
            self._results.put(None)
        for recorder in self._recorders:
            recorder.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _record_then_claim(
    session: Session,
    batch: list[Result],
    endpoint_ids: list[str],
    slots: int,
    held: Counter[str],
) -> list[ledger.Claim]:
    now = utcnow()
    record(session, batch, now=now)
    if not slots or any(outcome.disable_endpoint for _, outcome in batch):
        return []  # (an endpoint row locked out of order could deadlock another recorder)
    return ledger.claim_next(session, endpoint_ids, now=now, limit=slots, held=held)


_sender: Sender | None = None
_sender_lock = threading.Lock()


def get_sender() -> Sender:
    """This process's sender (made on first use, so each forked worker child has its own)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            settings = get_settings()
            index = pool_index()
            if index is not None and settings.pin_sender_processes:
                _pin(index)  # (before the sender starts its threads, which inherit the core)
            # Its own engine, without a ping before each transaction: a connection that died is
            # replaced when its statement fails, and the transaction is tried again.
            engine = make_engine(settings.database_url, pool_pre_ping=False)
            _sender = Sender(sessionmaker(engine, expire_on_commit=False))
        return _sender


def _pin(index: int) -> None:
    try:
        core = pin_to_one_core(index)
    except OSError:  # (a sandbox refusing it, a cpuset changed meanwhile): send unpinned
        log.warning("could not pin the sending process to a core", exc_info=True)
        return
    if core is not None:
        log.info("sending process pinned", extra={"core": core, "pool_index": index})


def current_sender() -> Sender | None:
    return _sender


def _forget_after_fork() -> None:
    global _sender, _sender_lock
    _sender, _sender_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
