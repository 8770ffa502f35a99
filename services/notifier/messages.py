"""Who an event concerns, and what its webhook says (composed at send time, after any erasure)."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Select, Table, select, true
from sqlalchemy.orm import Session

from services.notifier.bulk import among, distinct
from shared.db import is_postgres
from shared.domain.events import Topic
from shared.domain.vocabulary import OrganizationKind
from shared.models import (
    Offer,
    Organization,
    OutboxEvent,
    Referral,
    SupportAssignment,
    SupportTeam,
    Unit,
)

# Payload keys naming the rows a webhook describes.
REFERENCES: dict[str, Any] = {
    "referral_id": Referral,
    "unit_id": Unit,
    "offer_id": Offer,
    "assignment_id": SupportAssignment,
}

# The only columns webhooks read: what they may say about each row, and no more.
COLUMNS: dict[Any, tuple[str, ...]] = {
    Referral: (
        "id",
        "organization_id",
        "person_name",
        "date_of_birth",
        "gender",
        "contact",
        "adults",
        "children",
        "pets",
        "needs_wheelchair",
        "needs_step_free",
        "support_intensity",
    ),
    Unit: (
        "id",
        "organization_id",
        "region",
        "area",
        "reference",
        "bedrooms",
        "max_occupants",
        "wheelchair_accessible",
        "step_free",
    ),
    Offer: ("id", "status", "expires_at"),
    SupportAssignment: ("id", "team_id", "kind", "status"),
    SupportTeam: ("id", "organization_id"),
    Organization: ("id", "name"),
}


class EventLike(Protocol):
    """An outbox event, as an ORM object or a plain row."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...

    @property
    def created_at(self) -> datetime: ...


EventRow = namedtuple("EventRow", ("id", "topic", "payload", "created_at", "region"))
PLAIN_ROWS = {model: namedtuple(f"{model.__name__}Row", names) for model, names in COLUMNS.items()}
Layout = tuple[tuple[Any, int, int], ...]  # each model's columns: (model, first, past the last)


@cache
def _events_with_rows(postgres: bool) -> tuple[Select[Any], Layout]:
    """Events by id, each beside the rows its payload names and their owners: what composing
    a batch reads, in one statement (built once). On PostgreSQL each named row is a lateral
    lookup by primary key, so a batch costs index probes however the tables are sized (joined
    plainly, the planner may hash whole tables of people to find a page of them)."""
    events = cast(Table, OutboxEvent.__table__)
    columns: list[Any] = [events.c[name] for name in EventRow._fields]
    layout: list[tuple[Any, int, int]] = []
    source: Any = events

    def add(model: Any, key: ColumnElement[Any], name: str) -> Any:
        nonlocal source
        table = model.__table__
        if postgres:
            named = select(*(table.c[column] for column in COLUMNS[model]))
            # (LIMIT keeps the planner from flattening the lookup back into a plain join)
            found = named.where(table.c.id == key).limit(1).lateral(name)
            source = source.outerjoin(found, true())
        else:
            found = table.alias(name)
            source = source.outerjoin(found, found.c.id == key)
        layout.append((model, len(columns), len(columns) + len(COLUMNS[model])))
        columns.extend(found.c[column] for column in COLUMNS[model])
        return found

    joined = {
        model: add(model, events.c.payload[key].as_string(), key)
        for key, model in REFERENCES.items()
    }
    for model in (Referral, Unit):
        add(Organization, joined[model].c.organization_id, f"{model.__tablename__}_owner")
    query = select(*columns).select_from(source).where(among(events.c.id, "ids", postgres=postgres))
    return query, tuple(layout)


@cache
def _readable(model: Any, postgres: bool) -> Select[Any]:
    """The columns webhooks may read of a model's rows, by id (built once)."""
    table = model.__table__
    columns = [table.c[name] for name in COLUMNS[model]]
    return select(*columns).where(among(table.c.id, "ids", postgres=postgres))


class Rows:
    """The rows webhooks describe, read as plain rows (no ORM objects): a batch's events with
    what they name in one statement (`events`), anything else one query per table."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.found: dict[tuple[Any, str], Any] = {}
        self.endpoints: dict[str, list[Any]] = {}  # by organization (fanout.subscribers)

    def _read(self, model: Any, ids: Iterable[str]) -> None:
        wanted = sorted({object_id for object_id in ids if (model, object_id) not in self.found})
        if wanted:
            query = _readable(model, is_postgres(self.session.get_bind()))
            for row in self.session.execute(query, {"ids": wanted}):
                self.found[model, row.id] = row
            for object_id in wanted:
                self.found.setdefault((model, object_id), None)

    def events(self, event_ids: Iterable[str]) -> dict[str, Any]:
        """These events by id, and everything they name read along, in one statement."""
        statement, layout = _events_with_rows(is_postgres(self.session.get_bind()))
        found: dict[str, Any] = {}
        for row in self.session.execute(statement, {"ids": distinct(event_ids)}):
            event = EventRow(*row[: len(EventRow._fields)])
            found[event.id] = event
            for model, first, past in layout:
                if row[first] is not None:
                    self.found[model, row[first]] = PLAIN_ROWS[model](*row[first:past])
            for key, model in REFERENCES.items():
                named = (event.payload or {}).get(key)
                if named:
                    self.found.setdefault((model, named), None)  # (named, and gone)
        return found

    def get(self, model: Any, object_id: Any) -> Any:
        """The row, or None (when the id is empty or the row is gone)."""
        if not object_id:
            return None
        if (model, object_id) not in self.found:
            self._read(model, [object_id])
        return self.found[model, object_id]


def _team(rows: Rows, payload: dict[str, Any]) -> Any:
    team_id = payload.get("team_id")
    if not team_id:
        assignment = rows.get(SupportAssignment, payload.get("assignment_id"))
        team_id = assignment.team_id if assignment else None
    return rows.get(SupportTeam, team_id)


def audience(rows: Rows, event: EventLike) -> list[str]:
    """The organizations an event is about: each gets it about its own objects only."""
    payload = event.payload
    orgs: list[str | None] = []
    referral = rows.get(Referral, payload.get("referral_id"))
    unit = rows.get(Unit, payload.get("unit_id"))
    topic = Topic(event.topic)
    if topic is Topic.referral_received:
        orgs = [referral and referral.organization_id]
    elif topic is Topic.unit_available:
        orgs = [unit and unit.organization_id]
    elif topic.value.startswith(("offer.", "tenancy.")):
        orgs = [unit and unit.organization_id, referral and referral.organization_id]
    elif topic is Topic.support_pending_capacity:  # no team has room: operations are alerted
        orgs = list(
            rows.session.scalars(
                select(Organization.id).where(Organization.kind == OrganizationKind.operations)
            )
        )
    elif topic.value.startswith("support."):
        team = _team(rows, payload)
        orgs = [team.organization_id if team else None]
    return sorted({org for org in orgs if org})


def person(referral: Any) -> dict[str, Any]:
    return {
        "name": referral.person_name,
        "date_of_birth": referral.date_of_birth.isoformat() if referral.date_of_birth else None,
        "gender": referral.gender,
        "contact": referral.contact,
    }


def household(referral: Any) -> dict[str, Any]:
    return {
        "household": {
            "adults": referral.adults,
            "children": referral.children,
            "pets": referral.pets,
        },
        "needs": {"wheelchair": referral.needs_wheelchair, "step_free": referral.needs_step_free},
        "support_intensity": referral.support_intensity,
    }


def unit_brief(unit: Any) -> dict[str, Any]:
    return {
        "id": unit.id,
        "region": unit.region,
        "area": unit.area,
        "reference": unit.reference,
        "bedrooms": unit.bedrooms,
        "max_occupants": unit.max_occupants,
        "wheelchair_accessible": unit.wheelchair_accessible,
        "step_free": unit.step_free,
    }


def organization_brief(rows: Rows, organization_id: str | None) -> dict[str, Any] | None:
    organization = rows.get(Organization, organization_id)
    if organization is None:
        return None
    return {"id": organization.id, "name": organization.name}


def meeting_brief(rows: Rows, referral: Any, unit: Any) -> dict[str, Any]:
    """What a support team needs to go and meet the person: who, with whom, what they need,
    the home and its area, and the outreach team that knows them."""
    return {
        "person": person(referral),
        **household(referral),
        "unit": unit_brief(unit) if unit else None,
        "housing_provider": organization_brief(rows, unit.organization_id if unit else None),
        "outreach": {
            "organization": organization_brief(rows, referral.organization_id),
            "contact": referral.contact,
        },
    }


def compose(rows: Rows, event: EventLike) -> dict[str, Any]:
    """The `data` of the webhook for this event, from the rows as they are now."""
    payload = event.payload
    data: dict[str, Any] = {key: value for key, value in payload.items() if value is not None}
    referral = rows.get(Referral, payload.get("referral_id"))
    unit = rows.get(Unit, payload.get("unit_id"))
    offer = rows.get(Offer, payload.get("offer_id"))
    if offer is not None:
        data["offer"] = {
            "id": offer.id,
            "status": offer.status,
            "expires_at": offer.expires_at.isoformat(),
        }
    if event.topic == Topic.support_assigned and referral is not None:
        assignment = rows.get(SupportAssignment, payload.get("assignment_id"))
        data.update(meeting_brief(rows, referral, unit))
        data["assignment"] = (
            {"id": assignment.id, "kind": assignment.kind, "status": assignment.status}
            if assignment
            else None
        )
    elif unit is not None:
        data["unit"] = unit_brief(unit)
    return data
