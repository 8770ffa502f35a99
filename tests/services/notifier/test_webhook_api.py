"""The webhook endpoint and delivery API: each organization sees and changes only its own."""

from __future__ import annotations

from datetime import datetime, timedelta

from notifier_support import attempt, client, delivery, make_hook
from receivers import Reply, receiver
from standardwebhooks import Webhook

from services.notifier.ledger import signing_secrets
from shared.domain.vocabulary import Role
from shared.models import Delivery, WebhookEndpoint, utcnow
from support import Stack


def test_endpoints_are_created_listed_changed_and_deleted(stack: Stack) -> None:
    headers = stack.key(Role.support_provider)
    created = stack.client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://hooks.example.org/in", "events": ["support.assigned"] * 2},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == ["support.assigned"]
    assert created.headers["location"] == f"/v1/webhook-endpoints/{endpoint['id']}"
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    assert stack.client.get(path, headers=headers).json()["secret"] is None  # shown once
    changed = stack.client.patch(
        path,
        json={"url": "https://hooks.example.org/v2", "events": ["support.resumed"]},
        headers=headers,
    ).json()
    assert (changed["url"], changed["events"]) == (
        "https://hooks.example.org/v2",
        ["support.resumed"],
    )
    off = stack.client.patch(path, json={"enabled": False}, headers=headers).json()
    assert (off["enabled"], off["disabled_reason"]) == (False, "disabled by its organization")
    on = stack.client.patch(path, json={"enabled": True}, headers=headers).json()
    assert (on["enabled"], on["disabled_reason"]) == (True, None)
    listed = stack.client.get("/v1/webhook-endpoints", headers=headers).json()
    assert [e["id"] for e in listed["items"]] == [endpoint["id"]] and listed["next_cursor"] is None
    assert stack.client.delete(path, headers=headers).status_code == 204
    assert stack.client.get(path, headers=headers).status_code == 404


def test_bad_endpoint_bodies_are_refused(stack: Stack) -> None:
    headers = stack.key(Role.support_provider)
    for body in (
        {"url": "https://hooks.example.org", "events": ["sobriety.checked"]},
        {"url": "ftp://hooks.example.org", "events": ["support.assigned"]},
        {"url": "https://hooks.example.org", "events": []},
        {"url": "https://hooks.example.org", "events": ["support.assigned"], "x": 1},
    ):
        answer = stack.client.post("/v1/webhook-endpoints", json=body, headers=headers)
        assert answer.status_code == 422, body
        assert answer.headers["content-type"] == "application/problem+json"
    hook = make_hook(stack, "https://hooks.example.org")
    path = f"/v1/webhook-endpoints/{hook.id}"
    for change in ({"enabled": None}, {"url": None}, {"events": ["unit.unknown"]}, {"id": "x"}):
        assert stack.client.patch(path, json=change, headers=hook.headers).status_code == 422


def test_webhook_endpoint_bodies_agree_with_the_document(stack: Stack) -> None:
    """A URL of up to 2000 characters (maxLength) is kept as sent, even with no path; a PATCH
    field is never null and `enabled` is a JSON boolean, as the document says."""
    headers = stack.key(Role.support_provider)
    longest = "http://" + "a" * 1989 + ".org"  # 2000 characters, no "/" after the host
    created = stack.client.post(
        "/v1/webhook-endpoints",
        json={"url": longest, "events": ["support.assigned"]},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["url"] == longest
    too_long = stack.client.post(
        "/v1/webhook-endpoints",
        json={"url": longest + "/", "events": ["support.assigned"]},
        headers=headers,
    )
    assert too_long.status_code == 422
    assert too_long.headers["content-type"] == "application/problem+json"
    path = f"/v1/webhook-endpoints/{created.json()['id']}"
    for change in ({"enabled": None}, {"url": None}, {"events": None}, {"enabled": "yes"}):
        answer = stack.client.patch(path, json=change, headers=headers)
        assert answer.status_code == 422, change
        assert answer.headers["content-type"] == "application/problem+json"
    unchanged = stack.client.get(path, headers=headers).json()
    assert (unchanged["url"], unchanged["enabled"]) == (longest, True)
    schema = stack.client.get("/openapi.json").json()["components"]["schemas"]
    update = schema["WebhookEndpointUpdate"]["properties"]
    assert "anyOf" not in update["url"] and update["url"]["maxLength"] == 2000
    assert update["enabled"]["type"] == "boolean" and "anyOf" not in update["events"]


def test_other_organizations_get_404_for_endpoints_and_deliveries(stack: Stack) -> None:
    hook = make_hook(stack, "https://hooks.example.org/in")
    delivery_id = hook.delivery()
    stranger = stack.key(Role.housing_provider)
    path = f"/v1/webhook-endpoints/{hook.id}"
    for method, url in (
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("POST", f"{path}/rotate-secret"),
        ("GET", f"/v1/deliveries/{delivery_id}"),
        ("POST", f"/v1/deliveries/{delivery_id}/replay"),
    ):
        answer = stack.client.request(
            method, url, headers=stranger, json={} if method == "PATCH" else None
        )
        assert answer.status_code == 404, (method, url, answer.text)
        assert answer.json()["detail"] in (
            "No webhook endpoint with that id.",
            "No delivery with that id.",
        )
    assert stack.client.get("/v1/deliveries", headers=stranger).json()["items"] == []
    assert stack.client.get("/v1/webhook-endpoints", headers=stranger).json()["items"] == []
    mine = stack.client.get(f"/v1/deliveries/{delivery_id}", headers=hook.headers).json()
    assert (mine["webhook_id"], mine["status"]) == (f"msg_{delivery_id}", "pending")


def test_deliveries_are_listed_by_status_a_page_at_a_time(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hooks.reply(Reply(500))
        hook = make_hook(stack, hooks.url)
        first, second, third = hook.delivery(), hook.delivery(), hook.delivery()
        attempt(stack, first, now=utcnow(), http=http)
        attempt(stack, second, now=utcnow(), http=http)
    failed = stack.client.get("/v1/deliveries?status=failed", headers=hook.headers).json()
    assert [d["id"] for d in failed["items"]] == [first]
    assert failed["items"][0]["last_status_code"] == 500
    seen: list[str] = []
    cursor = ""
    while True:
        page = stack.client.get(
            f"/v1/deliveries?limit=1{cursor and '&cursor=' + cursor}", headers=hook.headers
        ).json()
        seen += [d["id"] for d in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted([first, second, third])
    detail = stack.client.get(f"/v1/deliveries/{first}", headers=hook.headers).json()
    [logged] = detail["attempt_log"]
    assert logged["status_code"] == 500 and logged["duration_ms"] >= 0
    assert stack.client.get("/v1/deliveries?status=lost", headers=hook.headers).status_code == 422


def test_replay_rules(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        delivered, in_flight, dead = hook.delivery(), hook.delivery(), hook.delivery()
        attempt(stack, delivered, now=utcnow(), http=http)
    with stack.session() as session:
        row = session.get(Delivery, in_flight)
        assert row is not None
        row.status, row.next_attempt_at = "sending", utcnow() + timedelta(minutes=1)
        gone = session.get(Delivery, dead)
        assert gone is not None
        gone.status, gone.next_attempt_at, gone.attempts = "dead", None, 10

    def replay(delivery_id: str) -> int:
        path = f"/v1/deliveries/{delivery_id}/replay"
        return stack.client.post(path, headers=hook.headers).status_code

    assert (replay(delivered), replay(in_flight)) == (409, 409)
    assert replay(dead) == 202
    revived = delivery(stack, dead)
    assert (revived.status, revived.attempts) == ("pending", 0)
    stack.client.patch(
        f"/v1/webhook-endpoints/{hook.id}", json={"enabled": False}, headers=hook.headers
    )
    assert replay(dead) == 409  # its endpoint is disabled


def test_a_rotated_secret_keeps_signing_beside_the_new_one_for_24_hours(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        path = f"/v1/webhook-endpoints/{hook.id}/rotate-secret"
        rotated = stack.client.post(path, headers=hook.headers)
        assert rotated.status_code == 200
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_") and new_secret != hook.secret
        until = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
        assert timedelta(hours=23, minutes=59) < until - utcnow() <= timedelta(hours=24)
        attempt(stack, hook.delivery(), now=utcnow(), http=http)
        [request] = hooks.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (hook.secret, new_secret):  # receivers on either secret accept it
        assert Webhook(secret).verify(request.body, request.headers)["type"] == "unit.available"
    with stack.session() as session:
        endpoint = session.get(WebhookEndpoint, hook.id)
        assert endpoint is not None
        assert signing_secrets(endpoint, utcnow() + timedelta(hours=25)) == [new_secret]
    shown = stack.client.get(f"/v1/webhook-endpoints/{hook.id}", headers=hook.headers).json()
    assert shown["secret"] is None and shown["previous_secret_expires_at"] is not None
