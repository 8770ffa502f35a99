"""POST/GET /v1/referrals on SQLite and PostgreSQL: intake, idempotency, refusals."""

from typing import Any

import pytest
from sqlalchemy import func, select

from shared.domain.vocabulary import Role
from shared.models import IdempotencyKey, OutboxEvent, Referral
from support import Stack, referral_body

PROBLEM = "application/problem+json"


def count(stack: Stack, model: Any) -> int:
    with stack.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_given_outreach_key_when_posting_then_201_with_location_and_waiting(stack: Stack) -> None:
    headers = stack.key(Role.outreach)
    response = stack.client.post(
        "/v1/referrals", json=referral_body(), headers={**headers, "Idempotency-Key": "k1"}
    )
    assert response.status_code == 201
    referral = response.json()
    assert response.headers["location"] == f"/v1/referrals/{referral['id']}"
    assert referral["status"] == "waiting"
    assert referral["person"]["name"] == "Sam"
    fetched = stack.client.get(response.headers["location"], headers=headers)
    assert fetched.status_code == 200
    assert fetched.json()["id"] == referral["id"]
    with stack.session() as session:
        [event] = session.scalars(select(OutboxEvent)).all()
        assert event.topic == "referral.received"
        assert event.payload["referral_id"] == referral["id"]
        assert "Sam" not in str(event.payload)


def test_same_key_same_body_answers_the_same_and_creates_one(stack: Stack) -> None:
    headers = {**stack.key(Role.outreach), "Idempotency-Key": "same"}
    first = stack.client.post("/v1/referrals", json=referral_body(), headers=headers)
    again = stack.client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert again.headers["location"] == first.headers["location"]
    assert count(stack, Referral) == 1
    assert count(stack, OutboxEvent) == 1


def test_same_key_other_body_is_422_and_nothing_is_created(stack: Stack) -> None:
    headers = {**stack.key(Role.outreach), "Idempotency-Key": "same"}
    stack.client.post("/v1/referrals", json=referral_body(), headers=headers)
    other = referral_body(support_intensity="low")
    response = stack.client.post("/v1/referrals", json=other, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert count(stack, Referral) == 1


def test_keys_are_per_organization(stack: Stack) -> None:
    for headers in (stack.key(Role.outreach), stack.key(Role.outreach)):
        response = stack.client.post(
            "/v1/referrals", json=referral_body(), headers={**headers, "Idempotency-Key": "shared"}
        )
        assert response.status_code == 201
    assert count(stack, Referral) == 2
    assert count(stack, IdempotencyKey) == 2


@pytest.mark.parametrize("key", [None, "", "x" * 256])
def test_missing_or_bad_idempotency_key_is_400(stack: Stack, key: str | None) -> None:
    headers = stack.key(Role.outreach)
    if key is not None:
        headers["Idempotency-Key"] = key
    response = stack.client.post("/v1/referrals", json=referral_body(), headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM
    assert count(stack, Referral) == 0


def test_consent_is_required(stack: Stack) -> None:
    body = referral_body(consent={"share_with_providers": False})
    response = stack.client.post(
        "/v1/referrals", json=body, headers={**stack.key(Role.outreach), "Idempotency-Key": "c"}
    )
    assert response.status_code == 422
    assert any("consent" in error["loc"] for error in response.json()["errors"])
    assert count(stack, Referral) == 0


def test_unknown_fields_are_refused(stack: Stack) -> None:
    body = referral_body(favourite_colour="blue")
    response = stack.client.post(
        "/v1/referrals", json=body, headers={**stack.key(Role.outreach), "Idempotency-Key": "u"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"][-1] == "favourite_colour"


@pytest.mark.parametrize(
    "smuggled",
    [
        {"sobriety_required": True},
        {"eligibility": {"veteran": False, "clean_for_months": 6, "drug_test": "passed"}},
        {"treatment_engaged": True},
        {"housing_ready": True},
        {"programme_compliance": "full"},
        {"person": {"name": "Sam", "sober": True}},
    ],
)
def test_readiness_fields_are_refused_naming_housing_first(
    stack: Stack, smuggled: dict[str, Any]
) -> None:
    body = referral_body(**smuggled)
    response = stack.client.post(
        "/v1/referrals", json=body, headers={**stack.key(Role.outreach), "Idempotency-Key": "r"}
    )
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == PROBLEM
    assert "Housing First" in problem["detail"]
    assert count(stack, Referral) == 0


def test_no_key_is_401_and_bad_key_is_401(stack: Stack) -> None:
    no_key = stack.client.post("/v1/referrals", json=referral_body())
    bad_key = stack.client.post(
        "/v1/referrals",
        json=referral_body(),
        headers={"Authorization": "Bearer hf_nope_nope", "Idempotency-Key": "x"},
    )
    assert (no_key.status_code, bad_key.status_code) == (401, 401)
    assert no_key.headers["content-type"] == PROBLEM


def test_a_provider_may_not_post_referrals(stack: Stack) -> None:
    response = stack.client.post(
        "/v1/referrals",
        json=referral_body(),
        headers={**stack.key(Role.housing_provider), "Idempotency-Key": "p"},
    )
    assert response.status_code == 403


def test_another_organizations_referral_is_404(stack: Stack) -> None:
    referral = stack.post_referral(stack.key(Role.outreach))
    for role in (Role.outreach, Role.housing_provider, Role.support_provider, Role.operations):
        response = stack.client.get(f"/v1/referrals/{referral['id']}", headers=stack.key(role))
        assert response.status_code == 404, role
        assert response.headers["content-type"] == PROBLEM


def test_region_outside_the_organization_is_refused(stack: Stack) -> None:
    response = stack.client.post(
        "/v1/referrals",
        json=referral_body(region="south"),
        headers={**stack.key(Role.outreach), "Idempotency-Key": "s"},
    )
    assert response.status_code == 422
