"""Helpers for notifier tests: endpoints through the API, deliveries from real events, and one
attempt driven by hand (claim, send, record) on a clock the test holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.notifier import delivery as webhook
from services.notifier.clients import WebhookClient, new_client
from services.notifier.fanout import fan_out
from services.notifier.ledger import Claim, claim
from services.notifier.outcomes import record
from shared.domain.vocabulary import Role
from shared.models import Delivery, DeliveryAttempt, OutboxEvent, WebhookEndpoint
from support import Stack


@dataclass
class Hook:
    """An endpoint of a housing provider, subscribed to unit.available."""

    stack: Stack
    headers: dict[str, str]
    id: str
    secret: str

    def delivery(self) -> str:
        """A new unit of the provider: its unit.available event fanned out to this endpoint."""
        unit = self.stack.post_unit(self.headers)
        with self.stack.session() as session:
            event = session.scalars(
                select(OutboxEvent).where(OutboxEvent.topic == "unit.available")
            ).all()
            [mine] = [e for e in event if e.payload.get("unit_id") == unit["id"]]
            created = fan_out(session, mine.id)
        [delivery_id] = [d for d in created if self.owns(d)]
        return delivery_id

    def owns(self, delivery_id: str) -> bool:
        with self.stack.session() as session:
            found = session.get(Delivery, delivery_id)
            return found is not None and found.endpoint_id == self.id


def make_endpoint(
    stack: Stack, headers: dict[str, str], url: str, events: list[str]
) -> dict[str, Any]:
    response = stack.client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": events}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def make_hook(stack: Stack, url: str) -> Hook:
    headers = stack.key(Role.housing_provider)
    created = make_endpoint(stack, headers, url, ["unit.available"])
    return Hook(stack, headers, created["id"], created["secret"])


def client(*, allow_private: bool = False, allow_loopback: bool = True, timeout: float = 2) -> Any:
    """A delivery client like the workers' (loopback allowed unless said otherwise)."""
    return new_client(allow_private=allow_private, allow_loopback=allow_loopback, timeout=timeout)


def take(
    stack: Stack,
    delivery_ids: list[str],
    *,
    now: datetime,
    limit: int = 10,
    stamp: datetime | None = None,
) -> list[Claim]:
    """Claim these deliveries at `now`, in a transaction of their own, as a deliver task does."""
    with stack.session() as session:
        return claim(session, delivery_ids, now=now, limit=limit, stamp=stamp)


def attempt(
    stack: Stack,
    delivery_id: str,
    *,
    now: datetime,
    http: WebhookClient,
    timeout: float = 2,
) -> webhook.Outcome | None:
    """One attempt as a worker makes it, at `now`; None if the delivery was not claimable."""
    claims = take(stack, [delivery_id], now=now, limit=1)
    if not claims:
        return None
    [taken] = claims
    outcome = webhook.send(taken.message, taken.url, http=http, timeout=timeout, now=now)
    with stack.session() as session:
        record(session, [(taken, outcome)], now=now)
    return outcome


def delivery(stack: Stack, delivery_id: str) -> Delivery:
    with stack.session() as session:
        found = session.get(Delivery, delivery_id)
        assert found is not None
        return found


def endpoint_row(stack: Stack, endpoint_id: str) -> WebhookEndpoint:
    with stack.session() as session:
        found = session.get(WebhookEndpoint, endpoint_id)
        assert found is not None
        return found


def attempts(stack: Stack, delivery_id: str) -> list[DeliveryAttempt]:
    with stack.session() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.attempted_at)
            )
        )
