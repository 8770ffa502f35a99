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
