"""GET /v1/availability: own units with open offers, strong ETag → 304, changed_since cursor."""

from shared.domain.vocabulary import Role
from support import Stack


def test_etag_304_and_changes_since_a_cursor(stack: Stack) -> None:
    provider, outreach = stack.key(Role.housing_provider), stack.key(Role.outreach)
    first, second = stack.post_unit(provider), stack.post_unit(provider)
    stack.post_unit(stack.key(Role.housing_provider))  # another provider's unit is not shown
    full = stack.client.get("/v1/availability", headers=provider)
    assert full.status_code == 200
    tag = full.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    assert {u["id"] for u in full.json()["items"]} == {first["id"], second["id"]}
    same = stack.client.get("/v1/availability", headers={**provider, "If-None-Match": tag})
    assert same.status_code == 304 and same.content == b""
    cursor = full.json()["cursor"]
    assert (
        stack.client.get(f"/v1/availability?changed_since={cursor}", headers=provider).json()[
            "items"
        ]
        == []
    )
    referral = stack.post_referral(outreach)
    stack.match()
    changed = stack.client.get("/v1/availability", headers={**provider, "If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    since = stack.client.get(f"/v1/availability?changed_since={cursor}", headers=provider).json()
    [unit] = since["items"]
    assert unit["status"] == "offered" and unit["open_offer"]["referral_id"] == referral["id"]
    # accepting moves the tag too
    tag = stack.client.get("/v1/availability", headers=provider).headers["etag"]
    stack.client.post(f"/v1/offers/{unit['open_offer']['id']}/accept", headers=outreach)
    after = stack.client.get("/v1/availability", headers={**provider, "If-None-Match": tag})
    assert after.status_code == 200
    assert [u["open_offer"]["status"] for u in after.json()["items"] if u["open_offer"]] == [
        "accepted"
    ]
    assert stack.client.get("/v1/availability", headers=outreach).status_code == 403


def test_units_list_own_with_status_and_cursor(stack: Stack) -> None:
    provider = stack.key(Role.housing_provider)
    first = stack.post_unit(provider)
    second = stack.post_unit(provider, status="offline")
    stack.post_unit(stack.key(Role.housing_provider))
    listed = stack.client.get("/v1/units?limit=1", headers=provider).json()
    assert [u["id"] for u in listed["items"]] == [first["id"]]
    rest = stack.client.get(f"/v1/units?cursor={listed['next_cursor']}", headers=provider).json()
    assert [u["id"] for u in rest["items"]] == [second["id"]]
    offline = stack.client.get("/v1/units?status=offline", headers=provider).json()["items"]
    assert [u["id"] for u in offline] == [second["id"]]
    since = rest["cursor"]
    stack.client.patch(f"/v1/units/{first['id']}", json={"bedrooms": 2}, headers=provider)
    changed = stack.client.get(f"/v1/units?changed_since={since}", headers=provider).json()["items"]
    assert [u["id"] for u in changed] == [first["id"]]
