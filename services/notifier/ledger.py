"""The delivery ledger: leases, attempts and the retry schedule, all kept in the database.

An attempt is claim (a short transaction that leases the row), send (no transaction open), record
(a short transaction, outcomes.py). The lease is `next_attempt_at` while the status is `sending`;
it outlasts the longest possible send, so nobody else sends meanwhile, and it doubles as the
fencing token: a late record only schedules the row if the lease is still its own. Claims read
and write plain rows in bulk (dues.py), since they are on every delivery's path.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    ScalarSelect,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from services.notifier import delivery as webhook
from services.notifier.bulk import among, distinct
from services.notifier.dues import (
    DUE_COLUMNS,
    AnyRows,
    D,
    Due,
    deliveries,
    locked_by_id,
    log_attempt,
    note_lost,
    write,
)
from services.notifier.messages import Rows, compose
from services.notifier.status import OPEN_STATUSES, DeliveryStatus
from shared.config import get_settings
from shared.db import is_postgres
from shared.models import WebhookEndpoint

log = logging.getLogger(__name__)

# Leases one endpoint may hold at once, across every worker: being sent, waiting in a process's
# lane for that endpoint, or answered and waiting to be recorded. Requests one worker process
# sends one endpoint at once. Claims a process holds for one endpoint unsent or being sent: a
# lane's last claim waits behind at most LANE_DEPTH - 1 requests, which the lease's length
# allows for. Leases being recorded need no such allowance, so the endpoint may hold more
# leases than a lane: deep enough that its connections stay fed while the finished attempts
# are recorded in large batches (in one process the recording thread waits for the GIL
# behind the sending threads, so lanes must outlast a record-and-refill transaction), and a
# lease (LANE_DEPTH requests of 15 s) still short enough that a lost worker's deliveries are
# sent again within two minutes.
IN_FLIGHT_PER_ENDPOINT = 64
SENDING_PER_ENDPOINT = 4
LANE_LIMIT = 24
LANE_DEPTH = -(-LANE_LIMIT // SENDING_PER_ENDPOINT)  # requests per sending slot
CLAIM_LOCK_WAIT = "5s"
CLAIM_LOCK_TIMEOUT = text(f"SET LOCAL lock_timeout = '{CLAIM_LOCK_WAIT}'")


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery leased for one attempt, with its signed message."""

    delivery_id: str
    endpoint_id: str
    url: str
    attempt: int
    claimed_at: datetime
    lease_until: datetime
    message: webhook.Message


endpoint_table = cast(Table, WebhookEndpoint.__table__)
E = endpoint_table.c
ENDPOINT_COLUMNS = (
    E.id,
    E.url,
    E.secret,
    E.previous_secret,
    E.previous_secret_expires_at,
    E.enabled,
    E.disabled_reason,
)


def lease_length(timeout_seconds: float | None = None) -> timedelta:
    """Longer than any attempt can take: the whole-request deadlines of the requests ahead of
    it in its lane and its own, with room to record."""
    timeout = timeout_seconds or get_settings().webhook_timeout_seconds
    return timedelta(seconds=LANE_DEPTH * timeout + 5)


def webhook_id(delivery_id: str) -> str:
    """The webhook-id receivers dedupe by: one per delivery, the same on every attempt."""
    return f"msg_{delivery_id}"


def signing_secrets(endpoint: Any, now: datetime) -> list[str]:
    """The current secret, and the previous one while its 24 hours after a rotation last."""
    secrets: list[str] = [endpoint.secret]
    expires_at = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires_at is not None and expires_at > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def leases_held(now: Any) -> ScalarSelect[int]:
    """An endpoint's leases not run out (being sent, or answered and not recorded yet), what
    IN_FLIGHT_PER_ENDPOINT caps; for the webhook_endpoints row of the enclosing query. `now`:
    a time, or a bind parameter."""
    return (
        select(func.count())
        .where(
            D.endpoint_id == E.id,
            D.status == DeliveryStatus.sending,
            D.next_attempt_at > now,
        )
        .scalar_subquery()
    )


@cache
def _endpoints_locked(postgres: bool, skip: bool = False) -> AnyRows:
    return (
        select(*ENDPOINT_COLUMNS, leases_held(bindparam("now")).label("busy"))
        .where(among(E.id, "ids", postgres=postgres))
        .order_by(E.id)
        # (FOR NO KEY UPDATE: claims still take turns, and a delivery being inserted, whose
        # foreign key only shares the row's key, does not wait for one)
        .with_for_update(of=endpoint_table, skip_locked=skip, key_share=True)
    )


def lock_endpoints(
    session: Session, endpoint_ids: Iterable[str], *, now: datetime, skip: bool = False
) -> dict[str, Any]:
    """The endpoints, locked (which makes the count exact when workers claim at once), each
    with `busy`: its leases in flight. `skip`: those another transaction holds are left out
    instead of waited for."""
    statement = _endpoints_locked(is_postgres(session.get_bind()), skip)
    rows = session.execute(statement, {"ids": distinct(endpoint_ids), "now": now})
    return {row.id: row for row in rows}


def _due(row: Due, *, now: datetime, stamp: datetime | None) -> bool:
    if row.status not in OPEN_STATUSES or row.next_attempt_at is None:
        return False
    if row.next_attempt_at <= now:
        return True  # due, or (sending) its lease ran out
    return row.status != DeliveryStatus.sending and row.next_attempt_at == stamp


def claim(
    session: Session,
    delivery_ids: Sequence[str],
    *,
    now: datetime,
    limit: int,
    stamp: datetime | None = None,
    held: Mapping[str, int] | None = None,
) -> list[Claim]:
    """Lease up to `limit` of these deliveries if due (or handed out with this sweep `stamp`),
    none for an endpoint whose lane is full (`held`: the claims the process holds unsent or
    being sent, per endpoint). Rows another transaction has locked are waited for, not
    skipped: a row handed to this task is claimed or left due here, never left carrying the
    sweep's stamp until it runs out (a concurrent claim may hold a row it then passes over).
    The wait is bounded: a transaction stuck holding a row (a frozen worker) fails this claim
    after CLAIM_LOCK_WAIT instead of holding up the process's other claims."""
    if is_postgres(session.get_bind()):
        session.execute(CLAIM_LOCK_TIMEOUT)
    rows = locked_by_id(session, delivery_ids, skip=False)
    return _take(session, rows, now, limit, stamp, held)


def _next_of(endpoint: ColumnElement[str], room: ColumnElement[int]) -> AnyRows:
    """An endpoint's next due deliveries, oldest first, as many as it has room for."""
    return (
        select(*DUE_COLUMNS)
        .where(
            D.endpoint_id == endpoint,
            D.status.in_(OPEN_STATUSES),
            D.next_attempt_at <= bindparam("now"),
        )
        .order_by(D.next_attempt_at)
        .limit(room)
    )


@cache
def _next_due(postgres: bool) -> AnyRows:
    if not postgres:  # SQLite: one writer, no row locks; one endpoint at a time
        return _next_of(bindparam("endpoint", type_=String), bindparam("room", type_=Integer))
    # PostgreSQL: the next few of each endpoint, all in one statement; only the rows it can
    # take are locked (a row locked and left would cost a write for nothing).
    endpoints = func.unnest(
        bindparam("endpoint_ids", type_=ARRAY(String)), bindparam("rooms", type_=ARRAY(Integer))
    )
    wanted = endpoints.table_valued("id", "room").render_derived(name="wanted")
    per_endpoint = (
        _next_of(wanted.c.id, wanted.c.room)
        .with_for_update(skip_locked=True, of=deliveries)
        .lateral("due")
    )
    return select(per_endpoint).select_from(wanted).join(per_endpoint, true())


def claim_next(
    session: Session,
    endpoint_ids: Sequence[str],
    *,
    now: datetime,
    limit: int,
    held: Mapping[str, int] | None = None,
) -> list[Claim]:
    """Lease the next due deliveries of these endpoints (a finished attempt frees their slot);
    up to the in-flight limit of each, and no more than its lane in this process has room for
    (`held`), so no endpoint's backlog crowds out another's."""
    room = {
        endpoint: min(limit, IN_FLIGHT_PER_ENDPOINT, LANE_LIMIT - (held or {}).get(endpoint, 0))
        for endpoint in distinct(endpoint_ids)
    }
    wanted = [endpoint for endpoint, free in room.items() if free > 0]
    if not wanted:
        return []
    if is_postgres(session.get_bind()):
        parameters = {"endpoint_ids": wanted, "rooms": [room[e] for e in wanted], "now": now}
        rows = [Due(*row) for row in session.execute(_next_due(True), parameters)]
    else:
        rows = [
            Due(*row)
            for endpoint in wanted
            for row in session.execute(
                _next_due(False), {"endpoint": endpoint, "room": room[endpoint], "now": now}
            )
        ]
    return _take(session, rows, now, limit, None, held)


def claim_new(
    session: Session,
    rows: list[Due],
    *,
    events: Mapping[str, Any],
    named: Rows,
    now: datetime,
    limit: int,
    held: Mapping[str, int] | None = None,
) -> list[Claim]:
    """As claim, for deliveries this transaction is making (their rows not written yet, so
    nobody else can hold them): their events and the rows those name are already at hand
    (`events`, `named`), and what is decided stays in `rows`, for the caller to insert as it
    is (attempts in each row's attempt_log). An endpoint another transaction holds is not
    waited for (the caller holds the process's claims meanwhile): its deliveries stay due, for
    a claim of their own after this commit."""
    return _take(session, rows, now, limit, None, held, events=events, named=named, new=True)


def _take(
    session: Session,
    rows: list[Due],
    now: datetime,
    limit: int,
    stamp: datetime | None,
    held: Mapping[str, int] | None,
    *,
    events: Mapping[str, Any] | None = None,
    named: Rows | None = None,
    new: bool = False,
) -> list[Claim]:
    due = [row for row in rows if _due(row, now=now, stamp=stamp)]
    if not due:
        return []
    # The rows it could take, as far as the limit and this process's lanes tell (the endpoints'
    # own counts are read under their lock, below): only their events are read and composed,
    # and before the endpoints are locked, so that the lock is held as briefly as can be
    # (claims in other processes wait for it). No other row is taken.
    lanes = Counter(held or {})
    candidates: set[str] = set()
    for row in due:
        if len(candidates) < limit and (held is None or lanes[row.endpoint_id] < LANE_LIMIT):
            lanes[row.endpoint_id] += 1
            candidates.add(row.id)
    rows_named = named or Rows(session)
    if events is None:
        events = rows_named.events(row.event_id for row in due if row.id in candidates)
    bodies: dict[str, bytes | Exception] = {}
    for row in due:
        event = events.get(row.event_id) if row.id in candidates else None
        if event is not None and event.id not in bodies:
            bodies[event.id] = _body(rows_named, event)
    endpoints = lock_endpoints(session, {row.endpoint_id for row in due}, now=now, skip=new)
    if new:  # (an endpoint held elsewhere: its new deliveries stay due, claimed after commit)
        due = [row for row in due if row.endpoint_id in endpoints]
    busy = Counter({endpoint.id: endpoint.busy for endpoint in endpoints.values()})
    lease_until = now + lease_length()
    taken: list[Due] = []
    for row in due:
        if row.status == DeliveryStatus.sending:
            note_lost(row, now=now)
        endpoint = endpoints.get(row.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            reason = endpoint.disabled_reason if endpoint is not None else None
            _bury(row, f"endpoint disabled: {reason}" if reason else "endpoint disabled")
        elif row.attempts >= webhook.MAX_ATTEMPTS:
            _bury(row, f"no attempt left after {row.attempts}; last: {row.last_error}")
        elif row.id in candidates and row.event_id not in events:
            _bury(row, "event no longer exists")
        elif row.id not in candidates or busy[row.endpoint_id] >= IN_FLIGHT_PER_ENDPOINT:
            # Left for the endpoint's next free slot or the sweep: a row the sweep stamped is
            # due again at once; a row already due is not written at all.
            if row.next_attempt_at and row.next_attempt_at > now:
                row.change(next_attempt_at=now)
        else:
            busy[row.endpoint_id] += 1
            row.change(status=DeliveryStatus.sending, next_attempt_at=lease_until)
            row.attempts += 1
            taken.append(row)
    claims = _sign(bodies, taken, endpoints, now=now, lease_until=lease_until)
    if not new:
        write(session, rows)
    return claims


def _bury(row: Due, reason: str) -> None:
    row.change(status=DeliveryStatus.dead, next_attempt_at=None, last_error=reason)


def _body(rows: Rows, event: Any) -> bytes | Exception:
    """The webhook body of an event, from the rows as they are now; or why it cannot be made
    (each of the event's deliveries then fails alone)."""
    try:
        return webhook.body_of(
            event_type=event.topic, occurred_at=event.created_at, data=compose(rows, event)
        )
    except Exception as error:
        return error


def _sign(
    bodies: Mapping[str, bytes | Exception],
    taken: list[Due],
    endpoints: dict[str, Any],
    *,
    now: datetime,
    lease_until: datetime,
) -> list[Claim]:
    """Sign each attempt, with its event's body (`bodies`, by event id: composed once per
    event before the endpoints were locked). A row whose body could not be composed, or that
    cannot be signed, fails this attempt alone, without holding up the others."""
    claims: list[Claim] = []
    for row in taken:
        endpoint, body = endpoints[row.endpoint_id], bodies[row.event_id]
        try:
            if isinstance(body, Exception):
                raise body
            message = webhook.build_message(
                msg_id=webhook_id(row.id),
                body=body,
                secrets=signing_secrets(endpoint, now),
                signed_at=now,
            )
        except Exception as error:
            log.exception("could not compose or sign delivery %s", row.id)
            _fail_unsent(row, f"not sent: {type(error).__name__}: {error}", now=now)
            continue
        claims.append(
            Claim(row.id, endpoint.id, endpoint.url, row.attempts, now, lease_until, message)
        )
    return claims


def _fail_unsent(row: Due, error: str, *, now: datetime) -> None:
    log_attempt(row, at=now, status_code=None, ms=0, error=error)
    outcome = webhook.Outcome(False, None, error, 0.0)
    retry_at = webhook.next_attempt_at(attempts=row.attempts, now=now, outcome=outcome)
    status = DeliveryStatus.failed if retry_at else DeliveryStatus.dead
    row.change(status=status, next_attempt_at=retry_at, last_status_code=None, last_error=error)
