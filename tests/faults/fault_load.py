"""Load from the three kinds of client, as their apps behave on a flaky network: outreach posts
referrals (retrying with the same Idempotency-Key until it gets an answer) and answers offers,
the provider adds homes and confirms move-ins, support teams acknowledge assignments."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from fault_stack import REGIONS, FaultStack

from support import referral_body, unit_body

RETRY_FOR_SECONDS = 180  # an app keeps retrying a referral this long before giving up
POSTERS = 6


@dataclass
class Tally:
    """Every answer the clients got, by status ("error" for no answer at all)."""

    statuses: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, status: str) -> None:
        with self.lock:
            self.statuses[status] += 1


class Clients:
    def __init__(self, stack: FaultStack, run: str) -> None:
        self.stack, self.run = stack, run
        self.http = httpx.Client(
            base_url=stack.api_url,
            timeout=15,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self.tally = Tally()
        self.acknowledged: dict[str, str] = {}  # person's name -> referral id (2xx answers)
        self.unanswered: list[str] = []  # names given up on (never a 2xx)
        self.posted = 0
        self.lock = threading.Lock()
        self.rng = random.Random(run)

    def close(self) -> None:
        self.http.close()

    def call(
        self, method: str, path: str, who: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response | None:
        """One request; None when no answer came (connection refused or reset, timeout)."""
        headers = {**self.stack.keys[who], **(headers or {})}
        try:
            answer = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError:
            self.tally.add("error")
            return None
        self.tally.add(str(answer.status_code))
        return answer

    # --- outreach -----------------------------------------------------------------------------
    def referral(
        self, number: int, region: str | None = None, urgent: bool = False
    ) -> dict[str, Any]:
        """A varied referral; `urgent`: ranked before everyone waiting, and fits any home."""
        rng = random.Random(f"{self.run}-{number}")
        if urgent:
            return referral_body(
                region=region or rng.choice(REGIONS),
                person={"name": f"{self.run}-{number}", "date_of_birth": "1979-04-02"},
                household={"adults": 1, "children": 0, "pets": 0},
                areas={"acceptable": [], "avoid": []},
                priority={"vulnerability_score": 100, "months_homeless_last_3_years": 36, "nights_unsheltered_last_year": 365},
            )  # fmt: skip
        return referral_body(
            region=region or rng.choice(REGIONS),
            person={"name": f"{self.run}-{number}", "date_of_birth": "1979-04-02"},
            household={"adults": rng.choice((1, 1, 2)), "children": rng.choice((0, 0, 1)), "pets": 0},
            areas={"acceptable": [], "avoid": rng.choice(([], ["harbour"]))},
            support_intensity=rng.choice(("high", "moderate", "low")),
            priority={
                "vulnerability_score": rng.randint(0, 100),
                "months_homeless_last_3_years": rng.randint(0, 36),
                "nights_unsheltered_last_year": rng.randint(0, 365),
            },
        )  # fmt: skip

    def post_referral(
        self, number: int, *, who: str = "outreach", region: str | None = None, urgent: bool = False
    ) -> None:
        """Post until a 2xx (or give up after RETRY_FOR_SECONDS), always with the same key."""
        name = f"{self.run}-{number}"
        headers = {"Idempotency-Key": f"{self.run}-{number}"}
        body = self.referral(number, region, urgent)
        deadline = time.monotonic() + RETRY_FOR_SECONDS
        pause = 0.2
        while time.monotonic() < deadline:
            answer = self.call("POST", "/v1/referrals", who, json=body, headers=headers)
            if answer is not None and answer.status_code in (200, 201):
                with self.lock:
                    self.acknowledged[name] = answer.json()["id"]
                return
            if answer is not None and answer.status_code not in (409, 429, 500, 502, 503):
                raise AssertionError(f"referral {name}: {answer.status_code} {answer.text}")
            time.sleep(pause)
            pause = min(pause * 2, 3.0)
        with self.lock:
            self.unanswered.append(name)

    def answer_offers(self) -> None:
        """The person's answers: most accept, some decline (no penalty)."""
        answer = self.call("GET", "/v1/offers", "outreach", params={"status": "open", "limit": 20})
        if answer is None or answer.status_code != 200:
            return
        for offer in answer.json()["items"]:
            action = "accept" if self.rng.random() < 0.8 else "decline"
            body = {} if action == "accept" else {"reason": "not this area"}
            self.call("POST", f"/v1/offers/{offer['id']}/{action}", "outreach", json=body)

    # --- provider and support -------------------------------------------------------------------
    def add_home(self, number: int) -> None:
        rng = random.Random(f"{self.run}-unit-{number}")
        body = unit_body(
            region=rng.choice(REGIONS),
            area=rng.choice(("riverside", "harbour", "hill")),
            max_occupants=rng.choice((1, 2, 2, 4)),
            pets_allowed=True,
            reference=f"{self.run} flat {number}",
        )
        for _ in range(20):
            answer = self.call("POST", "/v1/units", "provider", json=body)
            if answer is not None and answer.status_code == 201:
                return
            time.sleep(0.5)

    def move_in(self) -> None:
        answer = self.call(
            "GET", "/v1/offers", "provider", params={"status": "accepted", "limit": 20}
        )
        if answer is None or answer.status_code != 200:
            return
        for offer in answer.json()["items"]:
            self.call(
                "POST", f"/v1/offers/{offer['id']}/move-in", "provider", json={"date": "2026-12-01"}
            )

    def acknowledge(self) -> None:
        for kind in ("act", "icm", "floating"):
            answer = self.call(
                "GET", "/v1/support-assignments", kind, params={"status": "assigned", "limit": 20}
            )
            if answer is None or answer.status_code != 200:
                continue
            for assignment in answer.json()["items"][:10]:
                self.call("POST", f"/v1/support-assignments/{assignment['id']}/acknowledge", kind)


class Load:
    """Referrals at a steady rate with homes and the other clients' actions beside them."""

    def __init__(
        self,
        clients: Clients,
        *,
        referrals: int,
        seconds: float,
        first: int,
        urgent: bool = False,
        actions_every: int = 10,
        homes_every: int = 2,
    ) -> None:
        self.clients, self.referrals, self.seconds, self.first = clients, referrals, seconds, first
        self.urgent, self.actions_every, self.homes_every = urgent, actions_every, homes_every
        self.pool = ThreadPoolExecutor(POSTERS + 1)
        self.futures: list[Any] = []
        self.stopping = threading.Event()
        self.started = self.elapsed = 0.0

    def __enter__(self) -> Load:
        interval = self.seconds / max(self.referrals, 1)
        started = self.started = time.monotonic()

        def pace() -> None:
            for n in range(self.referrals):
                time.sleep(max(0.0, started + n * interval - time.monotonic()))
                number = self.first + n
                self.futures.append(
                    self.pool.submit(self.clients.post_referral, number, urgent=self.urgent)
                )
                if n % self.homes_every == 0:
                    self.futures.append(self.pool.submit(self.clients.add_home, number))
                if n % self.actions_every == 0:
                    for action in (
                        self.clients.answer_offers,
                        self.clients.move_in,
                        self.clients.acknowledge,
                    ):
                        self.futures.append(self.pool.submit(action))

        self.pacer = threading.Thread(target=pace, daemon=True)
        self.pacer.start()
        return self

    def busy(self) -> bool:
        return self.pacer.is_alive() or not all(f.done() for f in list(self.futures))

    def __exit__(self, *exc: object) -> None:
        self.pacer.join()
        for future in list(self.futures):
            future.result()
        self.pool.shutdown()
        self.elapsed = time.monotonic() - self.started  # longer than asked when the system lags
