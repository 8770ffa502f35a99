"""Hostile input and error shapes: 413, 429, limits, Unicode, problem+json everywhere, headers,
closed CORS, audit of personal data, and personal fields never in the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.api.app import create_app
from shared.config import Settings
from shared.domain.vocabulary import Role
from shared.models import AuditEvent
from support import Stack, referral_body

PROBLEM = "application/problem+json"


def test_bodies_over_the_limit_answer_413(stack: Stack) -> None:
    headers = {**stack.key(Role.outreach), "Idempotency-Key": "big"}
    body = referral_body(person={"name": "A", "contact": "x" * 70_000})
    response = stack.client.post("/v1/referrals", json=body, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    chunked = stack.client.post(
        "/v1/referrals",
        content=(b"x" * 1024 for _ in range(80)),
        headers={**headers, "content-type": "application/json"},
    )
    assert chunked.status_code == 413


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"person": {"name": "x" * 201}}, "name"),
        ({"person": {"name": "Sam", "contact": "c" * 1001}}, "contact"),
        ({"priority": {"vulnerability_score": 101}}, "vulnerability_score"),
        ({"priority": {"vulnerability_score": -1}}, "vulnerability_score"),
        ({"household": {"adults": 0}}, "adults"),
        ({"household": {"adults": 1, "children": 99}}, "children"),
        ({"region": ""}, "region"),
        ({"areas": {"avoid": ["a"] * 51}}, "avoid"),
    ],
)
def test_strings_have_lengths_and_numbers_ranges(
    stack: Stack, change: dict[str, object], where: str
) -> None:
    response = stack.client.post(
        "/v1/referrals",
        json=referral_body(**change),
        headers={**stack.key(Role.outreach), "Idempotency-Key": "lim"},
    )
    assert response.status_code == 422
    assert any(where in error["loc"] for error in response.json()["errors"])


def test_unicode_names_are_welcome(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    referral = stack.post_referral(outreach, person={"name": "Zoë Ó Súilleabháin 王秀英 ✓"})
    got = stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
    assert got["person"]["name"] == "Zoë Ó Súilleabháin 王秀英 ✓"


def test_every_error_class_is_problem_json(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    cases = [
        stack.client.get("/v1/referrals/nope", headers=outreach),  # 404
        stack.client.get("/v1/no-such-path", headers=outreach),  # 404 route
        stack.client.put("/v1/referrals", headers=outreach),  # 405
        stack.client.post("/v1/units", json={}, headers=stack.key(Role.housing_provider)),  # 422
        stack.client.post(
            "/v1/referrals",
            content=b"{not json",
            headers={**outreach, "Idempotency-Key": "j", "content-type": "application/json"},
        ),
        stack.client.get("/v1/referrals"),  # 401
        stack.client.post("/v1/units", json={}, headers=outreach),  # 403
    ]
    assert [r.status_code for r in cases] == [404, 404, 405, 422, 422, 401, 403]
    for response in cases:
        assert response.headers["content-type"] == PROBLEM, response.text
        problem = response.json()
        assert {"type", "title", "status", "detail"} <= problem.keys()


def test_a_bug_is_a_500_problem_without_a_stack_trace(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, data_dir=tmp_path))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /work/main/services")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    assert "secret" not in response.text and "Traceback" not in response.text


def test_a_database_that_is_down_answers_503_with_retry_after(tmp_path: Path) -> None:
    """Nothing is promised while the database is unreachable: 503, never a 2xx or a 500."""
    from servers import free_port

    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/housingfirst"
    app = create_app(Settings(database_url=closed, data_dir=tmp_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/v1/referrals",
            json=referral_body(),
            headers={"Authorization": "Bearer hf_k1_x", "Idempotency-Key": "k-1"},
        )
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) >= 1


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(Settings(database_url=sqlite_url, data_dir=tmp_path, rate_limit_per_minute=5))
    with TestClient(app) as client:
        statuses = [
            client.get("/v1/referrals", headers={"Authorization": "Bearer hf_k1_x"}).status_code
            for _ in range(7)
        ]
        other = client.get("/v1/referrals", headers={"Authorization": "Bearer hf_k2_x"})
        limited = client.get("/v1/referrals", headers={"Authorization": "Bearer hf_k1_x"})
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    assert other.status_code == 401
    assert limited.headers["content-type"] == PROBLEM
    assert int(limited.headers["retry-after"]) >= 1


def test_security_headers_and_closed_cors(stack: Stack) -> None:
    response = stack.client.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    preflight = stack.client.options(
        "/v1/referrals",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    spec = stack.client.get("/openapi.json")
    assert spec.status_code == 200 and "Sam" not in spec.text and "1979" not in spec.text


def test_reads_and_changes_of_personal_data_are_audited(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    referral = stack.post_referral(outreach)
    stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach)
    stack.client.get("/v1/referrals", headers=outreach)
    stack.client.patch(
        f"/v1/referrals/{referral['id']}", headers=outreach, json={"person": {"contact": "x"}}
    )
    stack.client.delete(f"/v1/referrals/{referral['id']}", headers=outreach)
    trail = stack.client.get(f"/v1/audit?object={referral['id']}", headers=stack.key(Role.admin))
    assert trail.status_code == 200
    assert sorted(e["action"] for e in trail.json()) == [
        "create",
        "erase",
        "read",
        "read",
        "update",
    ]
    assert all(e["key_id"] and e["organization_id"] for e in trail.json())
    assert (
        stack.client.get(
            f"/v1/audit?object={referral['id']}", headers=stack.key(Role.operations)
        ).status_code
        == 403
    )
    with stack.session() as session:
        assert len(list(session.scalars(select(AuditEvent)))) == 5


def test_revoked_keys_are_refused(stack: Stack) -> None:
    from services.keys import revoke_key

    headers = stack.key(Role.outreach)
    assert stack.client.get("/v1/referrals", headers=headers).status_code == 200
    with stack.session() as session:
        assert revoke_key(session, key=headers["Authorization"].removeprefix("Bearer "))
    assert stack.client.get("/v1/referrals", headers=headers).status_code == 401


def test_personal_fields_never_reach_the_logs(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    outreach, provider = stack.key(Role.outreach), stack.key(Role.housing_provider)
    support = stack.key(Role.support_provider)
    stack.client.post(
        "/v1/support-teams", headers=support, json={"region": "north", "kind": "act", "capacity": 3}
    )
    stack.post_unit(provider)
    referral = stack.post_referral(
        outreach,
        person={
            "name": "Zebedee Quillfeather",
            "date_of_birth": "1961-07-14",
            "contact": "behind the Moonrise bakery",
        },
    )
    stack.settle()
    stack.client.get(f"/v1/referrals/{referral['id']}", headers=outreach)
    stack.client.get("/v1/support-assignments", headers=support)
    stack.client.post(
        "/v1/referrals",
        json={"bad": "Zebedee Quillfeather"},
        headers={**outreach, "Idempotency-Key": "z"},
    )
    logged = caplog.text
    for secret in ("Zebedee", "Quillfeather", "1961-07-14", "Moonrise"):
        assert secret not in logged
