"""Plain helpers for tests: keys, request bodies, and running matching in-process."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from services.keys import create_key
from services.matcher.regions import request_round, serve_request
from shared.db import make_engine
from shared.domain.vocabulary import OrganizationKind, Role
from shared.models import EventConsumption, OutboxEvent, utcnow
from shared.queue import RESENT, Queue

_names = itertools.count()

KIND_FOR_ROLE = {
    Role.outreach: OrganizationKind.outreach,
    Role.housing_provider: OrganizationKind.housing_provider,
    Role.support_provider: OrganizationKind.support_provider,
    Role.operations: OrganizationKind.operations,
    Role.admin: OrganizationKind.operations,
}


def referral_body(**overrides: Any) -> dict[str, Any]:
    """A valid referral body (API.md's example), with overrides at the top level."""
    body: dict[str, Any] = {
        "region": "north",
        "person": {
            "name": "Sam",
            "date_of_birth": "1979-04-02",
            "gender": "male",
            "contact": "via St Mary's day centre",
        },
        "consent": {"share_with_providers": True},
        "household": {"adults": 1, "children": 0, "pets": 1},
        "needs": {"wheelchair": False, "step_free": False},
        "eligibility": {"veteran": False},
        "areas": {"acceptable": [], "avoid": ["harbour"]},
        "support_intensity": "high",
        "priority": {
            "vulnerability_score": 72,
            "months_homeless_last_3_years": 30,
            "nights_unsheltered_last_year": 200,
        },
    }
    body.update(overrides)
    return body


def unit_body(**overrides: Any) -> dict[str, Any]:
    """A valid unit body."""
    body: dict[str, Any] = {
        "region": "north",
        "area": "riverside",
        "max_occupants": 2,
        "bedrooms": 1,
        "wheelchair_accessible": False,
        "step_free": False,
        "pets_allowed": True,
        "eligibility": [],
        "status": "available",
        "reference": "Flat 3",
    }
    body.update(overrides)
    return body


@dataclass
class Stack:
    """An API client on one fresh database, with helpers to act as organizations."""

    client: TestClient
    database_url: str
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed at the end, as a worker's; the API has heard of what it
        changed before the next request (services/api/freshness.py)."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session
            session.commit()
        self.heard()

    def heard(self) -> None:
        """Wait until the API process has heard of every change committed so far."""
        app = getattr(self.client, "app", None)  # (some tests make a Stack without a client)
        watch = getattr(getattr(app, "state", None), "watch", None)
        if watch is not None and watch.live:
            assert watch.sync(), "the API did not hear a change notification in time"

    def key(self, role: Role, *, org: str | None = None, region: str = "north") -> dict[str, str]:
        """Authorization headers for a new key of a (new unless named) organization."""
        name = org or f"{role.value}-{next(_names)}"
        with self.session() as session:
            plain = create_key(
                session, org=name, kind=KIND_FOR_ROLE[role], role=role, region=region
            )
        return {"Authorization": f"Bearer {plain}"}

    def published(self) -> None:
        """Wait until the API has marked every event it sent published (it marks them a moment
        after the request: services/api/publishing.py)."""
        app: Any = self.client.app
        self.client.portal.call(app.state.publisher.settled)  # type: ignore[union-attr]

    def post_referral(self, headers: dict[str, str], key: str | None = None, **body: Any) -> Any:
        response = self.client.post(
            "/v1/referrals",
            json=referral_body(**body),
            headers={**headers, "Idempotency-Key": key or f"key-{next(_names)}"},
        )
        assert response.status_code == 201, response.text
        return response.json()

    def post_unit(self, headers: dict[str, str], **body: Any) -> Any:
        response = self.client.post("/v1/units", json=unit_body(**body), headers=headers)
        assert response.status_code == 201, response.text
        return response.json()

    def settle(self, region: str = "north") -> None:
        """Match the region, then let the notifier act on every event (support assignment)."""
        from services.notifier.fanout import fan_out

        self.match(region)
        with self.session() as session:
            done = select(EventConsumption.event_id).where(EventConsumption.consumer == "notifier")
            pending = list(
                session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.id.not_in(done))
                    .order_by(OutboxEvent.created_at)
                )
            )
        for event_id in pending:
            with self.session() as session:
                fan_out(session, event_id)

    def match(self, region: str = "north") -> None:
        """Run the region's matching in-process, as the matcher worker would."""
        with self.session() as session:
            request_round(session, region)
        while True:
            with self.session() as session:
                if not serve_request(session, region, now=utcnow(), ttl_hours=72):
                    return


def queued(app: Any, queue: Queue, *, resent: bool = False) -> list[tuple[str, Any]]:
    """The tasks waiting in a queue of a Celery app (its name and first argument), taken
    off it; each is marked `resent` or not, as asked."""
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(queue.value)
        found = []
        while simple.qsize():
            message = simple.get(timeout=1)
            assert bool(message.headers.get(RESENT)) is resent
            found.append((message.headers["task"], message.payload[0][0]))
            message.ack()
        return found
