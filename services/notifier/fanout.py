"""Acting on an event once: support assignment at a first offer, then one delivery row per
enabled endpoint subscribed to the event's type, in the organizations the event concerns.

Every event passes here, so the event is read with the rows it names in one statement (as
composing a webhook reads it), and the other statements are built once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Select, Table, select
from sqlalchemy.orm import Session

from services.notifier.bulk import among, insert_many
from services.notifier.dues import WRITTEN, Due, attempt_table
from services.notifier.ledger import Claim, claim_new
from services.notifier.messages import PLAIN_ROWS, EventRow, Rows, audience
from services.notifier.teams import Wanted, assign_support_all
from shared.consumption import consumed, record_consumptions
from shared.db import is_postgres
from shared.domain.events import WEBHOOK_TOPICS, Consumer, Topic, consumers_of
from shared.models import (
    Delivery,
    Referral,
    SupportAssignment,
    SupportTeam,
    Unit,
    WebhookEndpoint,
    new_id,
    utcnow,
)
from shared.outbox import PENDING_EVENTS, EventRef

_endpoints: Any = WebhookEndpoint.__table__


@cache
def _enabled_endpoints(postgres: bool) -> Select[Any]:
    return (
        select(_endpoints.c.id, _endpoints.c.organization_id, _endpoints.c.events)
        .where(
            among(_endpoints.c.organization_id, "organizations", postgres=postgres),
            _endpoints.c.enabled.is_(True),
        )
        .order_by(_endpoints.c.id)
    )


def subscribers(rows: Rows, events: Sequence[Any]) -> dict[str, list[Any]]:
    """Each event's enabled endpoints (id, organization_id, events) among the organizations it
    concerns that subscribed to its type, by event id. The endpoints of all their
    organizations are read at once, and each organization's once per transaction (`rows`
    keeps them: the events a fan-out emits find their organizations read)."""
    audiences = {
        event.id: audience(rows, event) for event in events if event.topic in WEBHOOK_TOPICS
    }
    known = rows.endpoints
    unread = sorted({org for orgs in audiences.values() for org in orgs} - known.keys())
    if unread:
        statement = _enabled_endpoints(is_postgres(rows.session.get_bind()))
        for org in unread:
            known[org] = []
        for endpoint in rows.session.execute(statement, {"organizations": unread}):
            known[endpoint.organization_id].append(endpoint)
    topics = {event.id: event.topic for event in events}
    return {
        event_id: sorted(
            (
                endpoint
                for org in orgs
                for endpoint in known[org]
                if topics[event_id] in endpoint.events
            ),
            key=lambda endpoint: endpoint.id,
        )
        for event_id, orgs in audiences.items()
    }


def fan_out(session: Session, event_id: str, *, now: datetime | None = None) -> list[str]:
    """One event's side effects once, then its deliveries (due now); ids of the ones created."""
    return fan_out_all(session, [event_id], now=now)


def fan_out_all(
    session: Session, event_ids: Sequence[str], *, now: datetime | None = None
) -> list[str]:
    """As fan_out, for events sent together (a round's triggers and offers, a fan-out's
    assignments, what the relay re-sends), in one transaction and one read, in the order they
    were sent (the order in which separate tasks would take them).

    A delivery is made only with the consumption record, in one transaction (and is unique per
    endpoint and event), so a redelivered task finds the event consumed and makes none. Support
    teams are locked in id order by every transaction that assigns: all the teams of the
    offers' regions at once (teams.assign_support_all).

    The events this transaction emits that only the notifier acts on (each assignment's
    support.assigned or support.pending_capacity) are acted on here too, before it commits:
    published, they would come back to a notifier task only to be read and fanned out the same
    way, a task, a read and a commit later. They are known as written (not read back), their
    subscribers are read with the others', and recording them marks them published.
    """
    return fan_out_and_claim(session, event_ids, now=now, limit=0)[1]


def fan_out_and_claim(
    session: Session,
    event_ids: Sequence[str],
    *,
    now: datetime | None = None,
    limit: int,
    held: Mapping[str, int] | None = None,
) -> tuple[list[Claim], list[str]]:
    """As fan_out_all, and in the same transaction the first attempts of up to `limit` of the
    deliveries made, leased as ledger.claim would (`held`: the claims the sending process
    holds per endpoint), from the rows the fan-out read: a claim's own transaction and its
    reads saved. The claims, and the ids of the deliveries made that are still due."""
    ids = list(dict.fromkeys(event_ids))
    done = consumed(session, ids, Consumer.notifier)
    ids = [event_id for event_id in ids if event_id not in done]
    if not ids:
        return [], []
    rows = Rows(session)
    found = rows.events(ids)
    events = [found[event_id] for event_id in ids if event_id in found]
    acted = [*events, *_support_at_first_offers(session, rows, events)]
    created = _deliveries(rows, acted, now or utcnow())
    record_consumptions(session, acted, Consumer.notifier)  # (event locks after team locks)
    claims: list[Claim] = []
    attempts: list[dict[str, Any]] = []
    if limit and created:
        dues = [
            Due(d["id"], d["endpoint_id"], d["event_id"], d["status"], 0, d["next_attempt_at"],
                None, None, None)
            for d in created
        ]  # fmt: skip
        by_id = {event.id: event for event in acted}
        claims = claim_new(
            session, dues, events=by_id, named=rows, now=utcnow(), limit=limit, held=held
        )
        for delivery, due in zip(created, dues, strict=True):
            delivery.update({name: getattr(due, name) for name in WRITTEN})
            attempts += due.attempt_log
    insert_many(session, cast(Table, Delivery.__table__), created)
    insert_many(session, attempt_table, attempts)
    due_ids = [delivery["id"] for delivery in created if delivery["status"] == "pending"]
    return claims, due_ids


def _support_at_first_offers(session: Session, rows: Rows, events: Sequence[Any]) -> list[Any]:
    """Rule 6's side effect of offer events: a team for each person at their first offer. The
    events this emits that only the notifier acts on, as rows, taken off the list to publish
    after commit (they are acted on in this transaction)."""
    wanted = []
    for event in events:
        if event.topic == Topic.offer_created:
            referral = rows.get(Referral, event.payload["referral_id"])
            unit = rows.get(Unit, event.payload["unit_id"])
            if referral is not None and event.region is not None:
                wanted.append(
                    Wanted(
                        referral_id=referral.id,
                        region=event.region,
                        support_intensity=referral.support_intensity,
                        unit_id=unit.id if unit else None,
                        area=unit.area if unit else None,
                        offer_id=event.payload.get("offer_id"),
                    )
                )
    if not wanted:
        return []
    assigned = assign_support_all(session, wanted)
    # What the events emitted name, known as written or read along: not read again (their
    # audience, and their webhooks when claimed in this transaction).
    team_row: Any = PLAIN_ROWS[SupportTeam]
    for team in assigned.teams:
        rows.found[SupportTeam, team.id] = team_row(team.id, team.organization_id)
    assignment_row: Any = PLAIN_ROWS[SupportAssignment]
    for made in assigned.assignments:
        rows.found[SupportAssignment, made["id"]] = assignment_row(
            made["id"], made["team_id"], str(made["kind"]), str(made["status"])
        )
    own = set(_take_own_events(session))
    return [
        EventRow(*(event[name] for name in EventRow._fields))
        for event in assigned.events
        if event["id"] in own
    ]


def _take_own_events(session: Session) -> list[str]:
    """The ids of the events emitted in this session that only the notifier acts on, taken off
    the list to publish after commit."""
    pending: list[EventRef] = session.info.get(PENDING_EVENTS, [])
    own = [ref.id for ref in pending if consumers_of(ref.topic) == (Consumer.notifier,)]
    taken = set(own)
    session.info[PENDING_EVENTS] = [ref for ref in pending if ref.id not in taken]
    return own


def _deliveries(rows: Rows, events: Sequence[Any], due_at: datetime) -> list[dict[str, Any]]:
    """A delivery (due at once) to each enabled endpoint subscribed to each event's type, in
    the organizations it concerns."""
    created_at = utcnow()
    created: list[dict[str, Any]] = []
    endpoints = subscribers(rows, events)
    for event in events:
        created += (
            {
                "id": new_id(),
                "endpoint_id": endpoint.id,
                "event_id": event.id,
                "organization_id": endpoint.organization_id,
                "event_type": event.topic,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": due_at,
                "last_status_code": None,
                "last_error": None,
                "delivered_at": None,
                "created_at": created_at,
            }
            for endpoint in endpoints.get(event.id, ())
        )
    return created
