"""JSON and URLs can carry a NUL character; PostgreSQL text cannot hold one. Such input is
refused with a problem naming where it is, and nothing is stored (not a 500)."""

from sqlalchemy import func, select

from shared.domain.vocabulary import Role
from shared.models import Referral, Unit
from support import Stack, referral_body, unit_body


def test_text_with_a_nul_is_refused_where_it_is(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    body = referral_body()
    body["person"]["name"] = "Sa\u0000m"
    body["areas"]["avoid"] = ["harbour\u0000"]  # (in a list too)
    response = stack.client.post(
        "/v1/referrals", json=body, headers={**outreach, "Idempotency-Key": "nul-1"}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    places = {
        (*error["loc"], error["msg"].rpartition(": ")[2]) for error in response.json()["errors"]
    }
    assert places == {("body", "person", "name"), ("body", "areas", "avoid")}
    unit = unit_body(reference="flat\u00001")
    response = stack.client.post("/v1/units", json=unit, headers=stack.key(Role.housing_provider))
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"] == ["body"] and error["msg"].endswith("NUL characters (\\u0000): reference")
    with stack.session() as session:
        assert session.scalar(select(func.count()).select_from(Referral)) == 0
        assert session.scalar(select(func.count()).select_from(Unit)) == 0
    # and the same key with a clean body is taken (the refused request claimed nothing)
    response = stack.client.post(
        "/v1/referrals", json=referral_body(), headers={**outreach, "Idempotency-Key": "nul-1"}
    )
    assert response.status_code == 201, response.text


def test_a_url_with_a_nul_is_refused(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    for path in ("/v1/referrals/ab%00c", "/v1/referrals?region=no%00rth", "/v1/units/x%00"):
        response = stack.client.get(path, headers=outreach)
        assert response.status_code == 400, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "NUL" in response.json()["detail"]
