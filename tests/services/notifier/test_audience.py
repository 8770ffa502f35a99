"""Every event in API.md reaches the organizations it concerns, at each enabled endpoint
subscribed to its type, and nobody else."""

from __future__ import annotations

from typing import Any

from notifier_support import make_endpoint
from sqlalchemy import select

from services.notifier.fanout import fan_out
from shared.domain.events import WEBHOOK_TOPICS, Topic
from shared.domain.vocabulary import Role
from shared.models import Delivery, OutboxEvent, SupportAssignment
from shared.outbox import new_event
from support import Stack

EVERYTHING = sorted(WEBHOOK_TOPICS)


def test_each_event_type_goes_to_the_organizations_it_concerns(lite_stack: Stack) -> None:
    stack = lite_stack
    keys = {
        name: stack.key(role)
        for name, role in (
            ("outreach", Role.outreach),
            ("provider", Role.housing_provider),
            ("support", Role.support_provider),
            ("operations", Role.operations),
            ("stranger", Role.outreach),
        )
    }
    owner = {
        make_endpoint(stack, headers, "https://hooks.example.org/all", EVERYTHING)["id"]: name
        for name, headers in keys.items()
    }
    off = make_endpoint(stack, keys["outreach"], "https://hooks.example.org/off", EVERYTHING)
    stack.client.patch(
        f"/v1/webhook-endpoints/{off['id']}", json={"enabled": False}, headers=keys["outreach"]
    )
    few = make_endpoint(stack, keys["provider"], "https://hooks.example.org/few", ["tenancy.ended"])
    owner[few["id"]] = "provider"
    stack.client.post(
        "/v1/support-teams",
        json={"region": "north", "kind": "act", "capacity": 5},
        headers=keys["support"],
    )
    unit = stack.post_unit(keys["provider"])
    referral = stack.post_referral(keys["outreach"])
    stack.match()
    with stack.session() as session:
        offer_created = session.scalars(
            select(OutboxEvent).where(OutboxEvent.topic == "offer.created")
        ).one()
        offer_id = offer_created.payload["offer_id"]
        fan_out(session, offer_created.id)
        assignment = session.scalars(select(SupportAssignment)).one()
    ids = {"referral_id": referral["id"], "unit_id": unit["id"]}
    offer = {**ids, "offer_id": offer_id}
    payloads: dict[Topic, dict[str, Any]] = {
        Topic.referral_received: {"referral_id": referral["id"]},
        Topic.unit_available: {"unit_id": unit["id"]},
        **{topic: offer for topic in Topic if topic.value.startswith("offer.")},
        Topic.tenancy_started: {**ids, "tenancy_id": "t1"},
        Topic.tenancy_ended: {**ids, "tenancy_id": "t1", "reason": "moved_on"},
        Topic.support_assigned: {
            **ids,
            "assignment_id": assignment.id,
            "team_id": assignment.team_id,
        },
        Topic.support_pending_capacity: {**ids, "assignment_id": assignment.id, "team_id": None},
        Topic.support_stepped_down: {"assignment_id": assignment.id, "referral_id": referral["id"]},
        Topic.support_resumed: {"assignment_id": assignment.id},
    }
    expected = {
        "referral.received": {"outreach"},
        "unit.available": {"provider"},
        **{t: {"provider", "outreach"} for t in EVERYTHING if t.startswith(("offer.", "tenancy."))},
        "support.assigned": {"support"},
        "support.stepped_down": {"support"},
        "support.resumed": {"support"},
        "support.pending_capacity": {"operations"},
    }
    assert set(payloads) == WEBHOOK_TOPICS == set(expected)
    for topic, payload in payloads.items():
        event = new_event(topic, region="north", payload=payload)
        with stack.session() as session:
            session.add(event)
        with stack.session() as session:
            created = fan_out(session, event.id)
            endpoints = session.scalars(
                select(Delivery.endpoint_id).where(Delivery.id.in_(created))
            ).all()
        assert {owner[e] for e in endpoints} == expected[topic.value], topic
        also_few = 1 if topic is Topic.tenancy_ended else 0  # the provider's second endpoint
        assert len(endpoints) == len(expected[topic.value]) + also_few, topic
