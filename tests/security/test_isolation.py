"""The cross-organization matrix, generated from the app's own route table: for every route
that takes an id and every method, a key of another organization (every role) gets 404 or 403,
and nothing changes in the database. A new route without a scoped lookup makes this fail."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select, text

from shared.domain.vocabulary import Role
from shared.models import Base, Delivery, Offer, SupportAssignment, WebhookEndpoint, new_id
from support import Stack

# A valid body for each route that takes one, so validation cannot answer before the lookup.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/referrals/{referral_id}"): {"person": {"contact": "x"}},
    ("POST", "/v1/referrals/{referral_id}/withdraw"): {"reason": "x"},
    ("PATCH", "/v1/units/{unit_id}"): {"status": "offline"},
    ("POST", "/v1/offers/{offer_id}/decline"): {"reason": "x"},
    ("POST", "/v1/offers/{offer_id}/move-in"): {"date": "2026-12-01"},
    ("POST", "/v1/tenancies/{tenancy_id}/absences"): {"kind": "hospital", "from": "2027-01-01"},
    ("POST", "/v1/tenancies/{tenancy_id}/absences/{absence_id}/end"): {"to": "2027-02-01"},
    ("POST", "/v1/tenancies/{tenancy_id}/end"): {"reason": "moved_on", "date": "2027-03-01"},
    ("POST", "/v1/support-assignments/{assignment_id}/step-down"): {"reason": "x"},
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {"enabled": False},
    ("POST", "/ops/deliveries/{delivery_id}/replay"): {"token": "x"},  # a form, cookie-signed
}
SKIP_TABLES = {"audit_events", "api_keys"}


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route, including those of included routers."""
    found: list[APIRoute] = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes)
            elif hasattr(route, "routes"):
                walk(route.routes)

    walk(list(app.routes))
    return found


def world(stack: Stack) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """One of everything, owned by one set of organizations; returns ids and owner keys."""
    owners = {
        role.value: stack.key(role, org=f"owner {role.value}")
        for role in (Role.outreach, Role.housing_provider, Role.support_provider)
    }
    stack.client.post(
        "/v1/support-teams",
        headers=owners["support_provider"],
        json={"region": "north", "kind": "act", "capacity": 5},
    )
    endpoint = stack.client.post(
        "/v1/webhook-endpoints",
        headers=owners["support_provider"],
        json={"url": "https://example.org/h", "events": ["support.assigned"]},
    ).json()
    unit = stack.post_unit(owners["housing_provider"])
    referral = stack.post_referral(owners["outreach"])
    stack.settle()
    offer = stack.client.get(f"/v1/referrals/{referral['id']}", headers=owners["outreach"]).json()[
        "offer"
    ]
    stack.client.post(f"/v1/offers/{offer['id']}/accept", headers=owners["outreach"])
    tenancy = stack.client.post(
        f"/v1/offers/{offer['id']}/move-in",
        headers=owners["housing_provider"],
        json={"date": "2026-12-01"},
    ).json()
    absence = stack.client.post(
        f"/v1/tenancies/{tenancy['id']}/absences",
        headers=owners["housing_provider"],
        json={"kind": "hospital", "from": "2026-12-10"},
    ).json()
    with stack.session() as session:
        assignment = session.scalar(select(SupportAssignment.id))
        delivery = session.scalar(select(Delivery.id))
        if delivery is None:
            event_id = session.execute(text("SELECT id FROM outbox_events LIMIT 1")).scalar_one()
            delivery = new_id()
            session.add(
                Delivery(
                    id=delivery,
                    endpoint_id=endpoint["id"],
                    event_id=event_id,
                    organization_id=session.get(WebhookEndpoint, endpoint["id"]).organization_id,  # type: ignore[union-attr]
                    event_type="support.assigned",
                    status="dead",
                )
            )
        assert session.get(Offer, offer["id"]) is not None
    ids = {
        "referral_id": referral["id"],
        "unit_id": unit["id"],
        "offer_id": offer["id"],
        "tenancy_id": tenancy["id"],
        "absence_id": absence["id"],
        "assignment_id": str(assignment),
        "endpoint_id": endpoint["id"],
        "delivery_id": str(delivery),
    }
    return ids, owners


def snapshot(stack: Stack) -> dict[str, list[tuple[Any, ...]]]:
    with stack.session() as session:
        return {
            table.name: sorted(tuple(map(str, row)) for row in session.execute(table.select()))
            for table in Base.metadata.sorted_tables
            if table.name not in SKIP_TABLES
        }


def test_another_organization_gets_404_or_403_everywhere_and_changes_nothing(stack: Stack) -> None:
    ids, _ = world(stack)
    app: FastAPI = stack.client.app  # type: ignore[assignment]
    targets = [
        (method, route.path)
        for route in api_routes(app)
        for method in sorted(route.methods)
        if re.search(r"{\w+}", route.path)
    ]
    assert len(targets) >= 20, targets
    strangers = {
        role: stack.key(role, org=f"stranger {role.value}")
        for role in (Role.outreach, Role.housing_provider, Role.support_provider, Role.operations)
    }
    stack.published()  # (the API marks the events it sent a moment after their requests)
    before = snapshot(stack)
    for method, path in targets:
        names = re.findall(r"{(\w+)}", path)
        missing = [name for name in names if name not in ids]
        assert not missing, f"no object for {missing} in {method} {path}: add it to world()"
        url = path.format(**ids)
        body = BODIES.get((method, path))
        route = next(r for r in api_routes(app) if r.path == path and method in r.methods)
        if route.body_field is not None and body is None and (method, path) not in BODIES:
            pytest.fail(f"{method} {path} takes a body: add a valid one to BODIES")
        for role, headers in strangers.items():
            if path.startswith("/ops/"):
                response = stack.client.request(method, url, headers=headers, data=body)
            else:
                response = stack.client.request(method, url, headers=headers, json=body)
            assert response.status_code in (403, 404), (
                method,
                path,
                role,
                response.status_code,
                response.text,
            )
            assert response.headers["content-type"] == "application/problem+json"
    assert snapshot(stack) == before


@pytest.mark.parametrize("role", [Role.outreach, Role.housing_provider, Role.support_provider])
def test_lists_show_only_the_callers_own(stack: Stack, role: Role) -> None:
    world(stack)
    stranger = stack.key(role, org="stranger")
    for path in (
        "/v1/referrals",
        "/v1/offers",
        "/v1/tenancies",
        "/v1/support-assignments",
        "/v1/deliveries",
        "/v1/webhook-endpoints",
    ):
        response = stack.client.get(path, headers=stranger)
        if response.status_code == 403:
            continue
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        items = body["items"] if isinstance(body, dict) else body
        assert items == [], (path, items)
