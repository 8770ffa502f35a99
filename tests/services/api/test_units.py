"""Units: closed eligibility list, PATCH, scoping; support teams; webhook endpoints; health."""

from typing import Any

import pytest
from sqlalchemy import select

from shared.domain.vocabulary import Role
from shared.models import OutboxEvent, Unit
from support import Stack, unit_body


def topics(stack: Stack) -> list[str]:
    with stack.session() as session:
        return [
            event.topic
            for event in session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at))
        ]


def test_given_a_provider_when_registering_an_available_unit_then_it_is_announced(
    stack: Stack,
) -> None:
    unit = stack.post_unit(
        stack.key(Role.housing_provider), eligibility=["veterans", "age_55_plus"]
    )
    assert unit["status"] == "available"
    assert unit["eligibility"] == ["veterans", "age_55_plus"]
    assert unit["available_since"] is not None
    assert topics(stack) == ["unit.available"]


@pytest.mark.parametrize(
    "tag",
    [
        "sobriety",
        "drug_free",
        "treatment_compliant",
        "housing_ready",
        "no_evictions",
        "no_criminal_record",
        "employed",
        "anything_else",
    ],
)
def test_any_eligibility_outside_the_closed_list_is_422_naming_housing_first(
    stack: Stack, tag: str
) -> None:
    response = stack.client.post(
        "/v1/units",
        json=unit_body(eligibility=["veterans", tag]),
        headers=stack.key(Role.housing_provider),
    )
    assert response.status_code == 422
    assert "Housing First" in response.json()["detail"]
    with stack.session() as session:
        assert session.scalars(select(Unit)).all() == []


@pytest.mark.parametrize("field", ["sobriety_required", "requires_treatment", "min_income"])
def test_readiness_fields_on_units_are_refused(stack: Stack, field: str) -> None:
    headers = stack.key(Role.housing_provider)
    created = stack.client.post("/v1/units", json=unit_body(**{field: True}), headers=headers)
    assert created.status_code == 422 and "Housing First" in created.json()["detail"]
    unit = stack.post_unit(headers)
    patched = stack.client.patch(f"/v1/units/{unit['id']}", json={field: True}, headers=headers)
    assert patched.status_code == 422 and "Housing First" in patched.json()["detail"]
    smuggled = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"eligibility": ["sobriety"]}, headers=headers
    )
    assert smuggled.status_code == 422 and "Housing First" in smuggled.json()["detail"]


def test_patch_sets_offline_then_available_again(stack: Stack) -> None:
    headers = stack.key(Role.housing_provider)
    unit = stack.post_unit(headers)
    offline = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"status": "offline"}, headers=headers
    )
    assert offline.status_code == 200 and offline.json()["status"] == "offline"
    back = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"status": "available", "max_occupants": 3}, headers=headers
    )
    assert back.json()["status"] == "available" and back.json()["max_occupants"] == 3
    assert topics(stack) == ["unit.available", "unit.available"]
    got = stack.client.get(f"/v1/units/{unit['id']}", headers=headers)
    assert got.json()["max_occupants"] == 3


def test_another_providers_unit_is_404_for_get_and_patch(stack: Stack) -> None:
    unit = stack.post_unit(stack.key(Role.housing_provider))
    other = stack.key(Role.housing_provider)
    assert stack.client.get(f"/v1/units/{unit['id']}", headers=other).status_code == 404
    response = stack.client.patch(
        f"/v1/units/{unit['id']}", json={"status": "offline"}, headers=other
    )
    assert response.status_code == 404
    with stack.session() as session:
        assert session.get(Unit, unit["id"]).status == "available"  # type: ignore[union-attr]


def test_outreach_may_not_register_units(stack: Stack) -> None:
    response = stack.client.post("/v1/units", json=unit_body(), headers=stack.key(Role.outreach))
    assert response.status_code == 403


def test_support_team_and_webhook_endpoint(stack: Stack) -> None:
    headers = stack.key(Role.support_provider)
    team = stack.client.post(
        "/v1/support-teams",
        json={"region": "north", "kind": "act", "areas": [], "capacity": 10},
        headers=headers,
    )
    assert team.status_code == 201 and team.json()["kind"] == "act"
    endpoint = stack.client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://example.org/hooks", "events": ["support.assigned"]},
        headers=headers,
    )
    assert endpoint.status_code == 201
    assert endpoint.json()["secret"].startswith("whsec_")
    bad: dict[str, Any] = {"url": "https://example.org/hooks", "events": ["nope"]}
    assert stack.client.post("/v1/webhook-endpoints", json=bad, headers=headers).status_code == 422
    assert (
        stack.client.post(
            "/v1/support-teams",
            json={"region": "north", "kind": "act", "capacity": 1},
            headers=stack.key(Role.outreach),
        ).status_code
        == 403
    )


def test_health_and_readiness(stack: Stack) -> None:
    assert stack.client.get("/healthz").json() == {"status": "ok"}
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200, ready.text
