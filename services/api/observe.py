"""Request ids, one JSON log line a request, and Prometheus metrics (GET /metrics).

The API serves the workers' figures too: matching rounds, deliveries and support capacity are
read from the database they write at scrape time ("pushed through the database"), and queue
depths through kombu, so one scrape target covers the whole system. Series are per process: run
one uvicorn worker per replica, or scrape each."""

from __future__ import annotations

import logging
import re
import secrets
import statistics
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from services.api.guards import ASGIApp, Message, Receive, Scope, Send
from services.api.ops_data import referral_to_offer_seconds, report
from shared import logs

log = logging.getLogger("housingfirst.api")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

registry = CollectorRegistry()
REQUESTS = Counter(
    "housingfirst_http_requests_total",
    "HTTP requests",
    ["method", "route", "status"],
    registry=registry,
)
LATENCY = Histogram(
    "housingfirst_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=registry,
)


class Observe:
    """Binds a request id (X-Request-ID in and out), times and counts every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else secrets.token_hex(8)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        with logs.bound(request=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", "unmatched")
                REQUESTS.labels(scope["method"], route, str(status)).inc()
                LATENCY.labels(scope["method"], route).observe(elapsed)
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 1),
                    },
                )


router = APIRouter(tags=["operations"])


def gauge(name: str, documentation: str, value: float | None, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    if value is not None:
        family.add_metric(list(labels.values()), value)
    return family


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format: this process's HTTP series and the system's current figures."""
    async with request.app.state.sessions() as session:
        figures = await report(session)
        to_offer = await referral_to_offer_seconds(session, timedelta(hours=1))
    families: list[Any] = []
    depth = GaugeMetricFamily("housingfirst_queue_depth", "Messages waiting", labels=["queue"])
    for queue in figures["queues"] or []:
        depth.add_metric([queue["name"]], queue["depth"])
    families.append(depth)
    families += [
        gauge("housingfirst_outbox_pending", "Events not yet acted on", figures["outbox_pending"]),
        gauge(
            "housingfirst_outbox_lag_seconds",
            "Age of the oldest unprocessed event",
            figures["outbox_oldest_age_seconds"] or 0.0,
        ),
        gauge(
            "housingfirst_support_pending_capacity",
            "Assignments waiting for capacity",
            figures["support_pending_capacity"],
        ),
        gauge(
            "housingfirst_workers_seen", "Workers with a recent heartbeat", len(figures["workers"])
        ),
    ]
    outcomes = GaugeMetricFamily(
        "housingfirst_deliveries", "Webhook deliveries by outcome", labels=["status"]
    )
    for status in ("pending", "failing", "dead", "delivered"):
        outcomes.add_metric([status], figures[f"deliveries_{status}"])
    families.append(outcomes)
    durations = [r["duration_seconds"] for r in figures["match_rounds"]]
    families.append(
        quantiles(
            "housingfirst_match_round_duration_seconds",
            "Matching round duration, last 10 minutes",
            durations,
        )
    )
    families.append(
        quantiles(
            "housingfirst_referral_to_offer_seconds", "Referral to first offer, last hour", to_offer
        )
    )
    snapshot = CollectorRegistry()
    for family in families:
        snapshot.register(_Fixed(family))
    body = generate_latest(registry) + generate_latest(snapshot)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def quantiles(name: str, documentation: str, values: list[float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["quantile"])
    if values:
        ordered = sorted(values)
        for q in (0.5, 0.9, 0.99):
            family.add_metric([str(q)], ordered[min(len(ordered) - 1, int(q * len(ordered)))])
        family.add_metric(["mean"], statistics.fmean(ordered))
    return family


class _Fixed:
    """A collector yielding one already-computed metric family."""

    def __init__(self, family: GaugeMetricFamily) -> None:
        self.family = family

    def collect(self) -> list[GaugeMetricFamily]:
        return [self.family]
