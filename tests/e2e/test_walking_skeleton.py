"""One referral travels the whole way on real processes: API, matcher, notifier, beat."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from httpserver import webhook_receiver
from processes import environment, processes, run, wait_ready
from servers import free_port
from support import referral_body, unit_body


def key(env: dict[str, str], org: str, kind: str, role: str) -> dict[str, str]:
    out = run(
        ["keys", "create", "--org", org, "--kind", kind, "--role", role, "--region", "north"], env
    )
    assert out.count("\n") == 1 and out.startswith("hf_"), out  # only the key
    return {"Authorization": f"Bearer {out.strip()}"}


def walk_one_referral(base: str, env: dict[str, str]) -> str:
    """Register a unit, a team and a webhook; post a referral; the team gets support.assigned."""
    outreach = key(env, "St Mary's outreach", "outreach", "outreach")
    provider = key(env, "Harbour Homes", "housing_provider", "housing_provider")
    support = key(env, "North ACT", "support_provider", "support_provider")
    with webhook_receiver() as receiver, httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/v1/units", json=unit_body(), headers=provider).status_code == 201
        team = client.post(
            "/v1/support-teams",
            headers=support,
            json={"region": "north", "kind": "act", "capacity": 10},
        )
        assert team.status_code == 201
        endpoint = client.post(
            "/v1/webhook-endpoints",
            headers=support,
            json={"url": receiver.url, "events": ["support.assigned"]},
        )
        secret = endpoint.json()["secret"]
        posted = client.post(
            "/v1/referrals", json=referral_body(), headers={**outreach, "Idempotency-Key": "walk-1"}
        )
        referral = posted.json()
        request = receiver.wait_for(lambda r: b"support.assigned" in r.body, timeout=60)
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload["type"] == "support.assigned"
        assert payload["data"]["referral_id"] == referral["id"]
        assert payload["data"]["person"]["name"] == "Sam"
        assert payload["data"]["team_id"] == team.json()["id"]
        seen = client.get(f"/v1/referrals/{referral['id']}", headers=outreach).json()
        assert seen["status"] == "offered"
        assert seen["support"]["status"] == "assigned"
    return posted.headers["x-request-id"]


def follow_in_logs(log_dir: Path, request_id: str) -> None:
    """Every line is JSON; the referral's request id is in the API, matcher and notifier logs;
    personal fields are in none of them."""
    import json

    seen_in = set()
    for name in ("api", "matcher", "notifier"):
        text = (log_dir / f"{name}.log").read_text()
        assert "1979-04-02" not in text and "St Mary's day centre" not in text, name
        for line in text.splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("request_id") == request_id:
                    seen_in.add(record["service"])
    assert seen_in == {"api", "matcher", "notifier"}, seen_in


def test_on_postgres_and_redis_with_real_workers(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = environment(
        database_url=postgres_url,
        broker_url=redis_url,
        data_dir=str(tmp_path),
        allow_private_webhook_targets="true",
    )
    run(["migrate"], env)
    port = free_port()
    with processes(env, tmp_path) as group:
        group.start("api", ["api", "--port", str(port)])
        group.start("matcher", ["worker", "--queues", "matching,maintenance", "--name", "m@%h"])
        group.start("notifier", ["worker", "--queues", "notifications", "--name", "n@%h"])
        group.start("beat", ["beat"])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            request_id = walk_one_referral(base, env)
            time.sleep(1)  # the notifier's last line is written just after the webhook is sent
            follow_in_logs(tmp_path, request_id)
        except BaseException:
            print(group.logs())
            raise


def test_through_housingfirst_up_on_the_embedded_default(tmp_path: Path) -> None:
    env = environment(data_dir=str(tmp_path / "var"))
    port = free_port()
    with processes(env, tmp_path) as group:
        group.start("up", ["up", "--port", str(port)])
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base)
            walk_one_referral(base, env)
        except BaseException:
            print(group.logs())
            raise
    assert "Ctrl-C stops everything" in (tmp_path / "up.log").read_text()
    assert "housingfirst: stopped" in (tmp_path / "up.log").read_text()
