"""Operations: queue depths on both brokers (workers stopped: depth rises; the matcher
started: its queue drains into the notifier's; the notifier started: that drains),
metrics that parse, and the /ops page in headless Chromium (numbers, replay, screenshot)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from processes import environment, processes, run, wait_ready
from servers import free_port
from shared.db import make_engine
from shared.models import Delivery, OutboxEvent, WebhookEndpoint, new_id
from support import referral_body, unit_body


def key(env: dict[str, str], org: str, kind: str, role: str) -> dict[str, str]:
    plain = run(
        ["keys", "create", "--org", org, "--kind", kind, "--role", role, "--region", "north"], env
    )
    return {"Authorization": f"Bearer {plain.strip()}"}


def depths(client: httpx.Client, ops: dict[str, str]) -> dict[str, int]:
    report = client.get("/v1/ops/queues", headers=ops).json()
    # (none when the broker did not answer within the report's 5 s: the test asks again)
    return {queue["name"]: queue["depth"] for queue in report["queues"] or []}


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise TimeoutError("condition not met")


def queues_rise_and_drain(env: dict[str, str], tmp_path: Path) -> None:
    run(["migrate"], env)
    ops = key(env, "Ops", "operations", "operations")
    outreach = key(env, "Outreach", "outreach", "outreach")
    provider = key(env, "Homes", "housing_provider", "housing_provider")
    port = free_port()
    with (
        processes(env, tmp_path) as group,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):
        group.start("api", ["api", "--port", str(port)])
        try:
            wait_ready(f"http://127.0.0.1:{port}")
            client.post("/v1/units", json=unit_body(), headers=provider)
            for index in range(12):
                client.post(
                    "/v1/referrals",
                    json=referral_body(),
                    headers={**outreach, "Idempotency-Key": f"q{index}"},
                )
            # tasks come in batches of the events published together (requests answered
            # at once are published together); these events go to the matcher, which
            # forwards them to the notifier with its rounds' offers
            wait_for(lambda: depths(client, ops).get("matching", 0) >= 1)
            report = client.get("/v1/ops/queues", headers=ops).json()
            assert report["outbox_pending"] >= 13 and report["workers"] == []
            group.start("matcher", ["worker", "--queues", "matching,maintenance", "--name", "m@%h"])
            wait_for(
                lambda: (
                    (d := depths(client, ops)).get("notifications", 0) >= 1 and d["matching"] == 0
                )
            )
            group.start("notifier", ["worker", "--queues", "notifications", "--name", "n@%h"])
            wait_for(
                lambda: depths(client, ops) == {"matching": 0, "notifications": 0, "maintenance": 0}
            )
            drained = wait_for(
                lambda: (
                    (r := client.get("/v1/ops/queues", headers=ops).json())["outbox_pending"] == 0
                    and r
                )
            )
            assert {w["hostname"].split("@")[0] for w in drained["workers"]} == {"m", "n"}
            assert drained["match_rounds"], "rounds of the last minutes are listed"
            assert client.get("/v1/ops/queues", headers=outreach).status_code == 403
        except BaseException:
            print(group.logs())
            raise


def test_queue_depths_on_redis(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    queues_rise_and_drain(
        environment(database_url=postgres_url, broker_url=redis_url, data_dir=str(tmp_path)),
        tmp_path,
    )


def test_queue_depths_on_the_embedded_broker(tmp_path: Path) -> None:
    queues_rise_and_drain(environment(data_dir=str(tmp_path / "var")), tmp_path)


SERIES = [
    "housingfirst_http_requests_total",
    "housingfirst_http_request_duration_seconds",
    "housingfirst_queue_depth",
    "housingfirst_outbox_lag_seconds",
    "housingfirst_outbox_pending",
    "housingfirst_match_round_duration_seconds",
    "housingfirst_referral_to_offer_seconds",
    "housingfirst_deliveries",
    "housingfirst_support_pending_capacity",
]


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is installed by make test"
)
def test_ops_page_in_a_real_browser_and_metrics(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    env = environment(data_dir=str(tmp_path / "var"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = Path(__file__).resolve().parents[2] / "test-output"
    output.mkdir(exist_ok=True)
    with processes(env, tmp_path) as group:
        group.start("up", ["up", "--port", str(port)])
        try:
            wait_ready(base)
            admin = key(env, "Admins", "operations", "admin")
            outreach = key(env, "Outreach", "outreach", "outreach")
            support = key(env, "ACT", "support_provider", "support_provider")
            httpx.post(
                f"{base}/v1/units",
                json=unit_body(),
                headers=key(env, "Homes", "housing_provider", "housing_provider"),
            )
            endpoint = httpx.post(
                f"{base}/v1/webhook-endpoints",
                headers=support,
                json={"url": "http://127.0.0.1:9/gone", "events": ["support.assigned"]},
            ).json()
            httpx.post(
                f"{base}/v1/referrals",
                json=referral_body(),
                headers={**outreach, "Idempotency-Key": "o1"},
            )
            engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'housingfirst.db'}")
            with Session(engine) as session:  # a delivery that already ran out of attempts
                event_id = session.scalar(select(OutboxEvent.id).limit(1))
                org = session.get(WebhookEndpoint, endpoint["id"]).organization_id  # type: ignore[union-attr]
                dead_id = new_id()
                session.add(
                    Delivery(
                        id=dead_id,
                        endpoint_id=endpoint["id"],
                        event_id=event_id,
                        organization_id=org,
                        event_type="support.assigned",
                        status="dead",
                        attempts=10,
                        last_error="ConnectError",
                        next_attempt_at=None,
                    )
                )
                session.commit()
            metrics = httpx.get(f"{base}/metrics").text
            names = {family.name for family in text_string_to_metric_families(metrics)}
            for series in SERIES:
                assert series.removesuffix("_total") in names, series
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"),
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                    ],
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{base}/ops")
                page.fill("input[name=key]", admin["Authorization"].removeprefix("Bearer "))
                page.click("button[type=submit]")
                # Beat keeps queueing sweeps, so a depth can change between the page's read and
                # the API's: the page is loaded again until both saw the same moment.
                for _ in range(10):
                    page.wait_for_selector("#queues table")
                    shown = {
                        row.query_selector_all("td")[0].inner_text(): int(
                            row.query_selector_all("td")[1].inner_text()
                        )
                        for row in page.query_selector_all("#queues tbody tr")
                    }
                    api = httpx.get(f"{base}/v1/ops/queues", headers=admin).json()
                    depths = {q["name"]: q["depth"] for q in api["queues"]}
                    if shown == depths:
                        break
                    time.sleep(0.5)
                    page.reload()
                assert set(shown) == {"matching", "notifications", "maintenance"}
                assert shown == depths
                page.screenshot(path=str(output / "ops-page.png"), full_page=True)
                page.click(f"button[data-delivery='{dead_id}']")
                page.wait_for_selector("#queues table")
                browser.close()
            with Session(engine) as session:
                assert session.get(Delivery, dead_id).status != "dead"  # type: ignore[union-attr]
                session.execute(text("SELECT 1"))
            engine.dispose()
        except BaseException:
            print(group.logs())
            raise
    assert (output / "ops-page.png").stat().st_size > 10_000
