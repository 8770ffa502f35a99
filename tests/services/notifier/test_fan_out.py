"""Support assignment at the first offer and signed webhook deliveries, in-process."""

from typing import Any

from notifier_support import attempt, client
from sqlalchemy import select
from standardwebhooks import Webhook

from httpserver import webhook_receiver
from services.notifier.fanout import fan_out, fan_out_all, fan_out_and_claim
from shared.domain.vocabulary import Role
from shared.models import Delivery, OutboxEvent, SupportAssignment, WebhookEndpoint, utcnow
from support import Stack


def events(stack: Stack, topic: str) -> list[OutboxEvent]:
    with stack.session() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.topic == topic)))


def team(stack: Stack, headers: dict[str, str], kind: str = "act", capacity: int = 1) -> Any:
    return stack.client.post(
        "/v1/support-teams",
        json={"region": "north", "kind": kind, "capacity": capacity},
        headers=headers,
    ).json()


def endpoint(stack: Stack, headers: dict[str, str], url: str, events: list[str]) -> Any:
    return stack.client.post(
        "/v1/webhook-endpoints", json={"url": url, "events": events}, headers=headers
    ).json()


def test_first_offer_assigns_the_least_loaded_team_of_the_right_kind(stack: Stack) -> None:
    support = stack.key(Role.support_provider)
    busy, free = team(stack, support, capacity=2), team(stack, support, capacity=2)
    team(stack, support, kind="floating", capacity=50)
    with stack.session() as session:
        session.add(
            SupportAssignment(
                referral_id=stack.post_referral(stack.key(Role.outreach))["id"],
                team_id=busy["id"],
                region="north",
                kind="act",
                status="active",
            )
        )
    stack.post_unit(stack.key(Role.housing_provider))
    referral = stack.post_referral(stack.key(Role.outreach), priority={"vulnerability_score": 100})
    stack.match()
    [offer_created] = events(stack, "offer.created")
    with stack.session() as session:
        fan_out(session, offer_created.id)
        assignment = session.scalar(
            select(SupportAssignment).where(SupportAssignment.referral_id == referral["id"])
        )
        assert assignment is not None
        assert (assignment.team_id, assignment.status) == (free["id"], "assigned")
    assert len(events(stack, "support.assigned")) == 1
    with stack.session() as session:  # a redelivered task changes nothing
        assert fan_out(session, offer_created.id) == []
    assert len(events(stack, "support.assigned")) == 1


def test_no_capacity_waits_in_pending_capacity_without_delaying_the_offer(stack: Stack) -> None:
    stack.post_unit(stack.key(Role.housing_provider))
    referral = stack.post_referral(stack.key(Role.outreach))
    stack.match()
    [offer_created] = events(stack, "offer.created")
    with stack.session() as session:
        fan_out(session, offer_created.id)
    with stack.session() as session:
        assignment = session.scalar(select(SupportAssignment))
        assert assignment is not None and assignment.status == "pending_capacity"
    assert len(events(stack, "support.pending_capacity")) == 1
    got = stack.client.get(f"/v1/referrals/{referral['id']}", headers=stack.key(Role.admin))
    assert got.json()["status"] == "offered"


def test_support_assigned_is_delivered_signed_once(stack: Stack) -> None:
    support = stack.key(Role.support_provider)
    team(stack, support)
    stack.post_unit(stack.key(Role.housing_provider), area="riverside")
    stack.post_referral(stack.key(Role.outreach))
    stack.match()
    with webhook_receiver() as receiver:
        secret = endpoint(stack, support, receiver.url, ["support.assigned"])["secret"]
        with stack.session() as session:  # the assignment's event is acted on at once
            [delivery_id] = fan_out(session, events(stack, "offer.created")[0].id)
        [assigned] = events(stack, "support.assigned")
        assert assigned.processed_at is not None and assigned.published_at is not None
        with stack.session() as session:  # so a task for it (the relay's) finds it done
            assert fan_out(session, assigned.id) == []
        with client() as http:  # the second attempt finds it delivered and sends nothing
            assert attempt(stack, delivery_id, now=utcnow(), http=http) is not None
            assert attempt(stack, delivery_id, now=utcnow(), http=http) is None
        assert len(receiver.requests) == 1
        request = receiver.requests[0]
        body = Webhook(secret).verify(request.body, request.headers)
        assert body["type"] == "support.assigned"
        assert body["data"]["person"]["name"] == "Sam"
        data = body["data"]  # what the team needs to go and meet the person
        assert data["unit"]["area"] == "riverside" and data["unit"]["reference"] == "Flat 3"
        assert data["household"] == {"adults": 1, "children": 0, "pets": 1}
        assert data["needs"] == {"wheelchair": False, "step_free": False}
        assert data["outreach"]["contact"] == "via St Mary's day centre"
        assert data["outreach"]["organization"]["name"].startswith("outreach-")
        assert data["housing_provider"]["name"].startswith("housing_provider-")
        assert data["assignment"]["kind"] == "act" and data["offer"]["status"] == "open"
    with stack.session() as session:
        stored = session.get(Delivery, delivery_id)
        assert stored is not None and (stored.status, stored.attempts) == ("delivered", 1)


def test_the_offers_of_one_round_are_acted_on_together_once(stack: Stack) -> None:
    """A round's offers reach the notifier as one task: one transaction assigns support to each
    person and makes each webhook's delivery, and a redelivered batch makes nothing twice."""
    support = stack.key(Role.support_provider)
    acts = [team(stack, support, capacity=1) for _ in range(2)]
    floating = team(stack, support, kind="floating", capacity=5)
    people = [
        stack.post_referral(stack.key(Role.outreach), support_intensity=intensity)
        for intensity in ("high", "high", "low")
    ]
    provider = stack.key(Role.housing_provider)
    for _ in people:
        stack.post_unit(provider)
    stack.match()
    offers = [event.id for event in events(stack, "offer.created")]
    assert len(offers) == 3
    with webhook_receiver() as receiver:
        hook = endpoint(stack, provider, receiver.url, ["offer.created"])
        with stack.session() as session:
            created = fan_out_all(session, [*offers, offers[0]])  # (an id twice: once)
        with stack.session() as session:
            made = session.scalars(select(Delivery).where(Delivery.id.in_(created))).all()
            assert sorted(d.event_id for d in made) == sorted(offers)
            assert {d.endpoint_id for d in made} == {hook["id"]}
            teams = {a.referral_id: a.team_id for a in session.scalars(select(SupportAssignment))}
        assert teams[people[2]["id"]] == floating["id"]
        assert {teams[people[0]["id"]], teams[people[1]["id"]]} == {a["id"] for a in acts}
        assert len(events(stack, "support.assigned")) == 3
        with stack.session() as session:
            assert fan_out_all(session, offers) == []
        assert len(events(stack, "support.assigned")) == 3


def test_a_fan_out_leases_the_first_attempts_it_has_room_for(stack: Stack) -> None:
    """The worker's fan-out claims in its own transaction (no claim transaction of its own),
    from the rows it read and wrote: the messages are the ones a claim would sign."""
    support = stack.key(Role.support_provider)
    team(stack, support, capacity=5)
    provider = stack.key(Role.housing_provider)
    for _ in range(2):
        stack.post_unit(provider)
        stack.post_referral(stack.key(Role.outreach))
    stack.match()
    offers = [event.id for event in events(stack, "offer.created")]
    assert len(offers) == 2
    secret = endpoint(stack, support, "http://127.0.0.1:9/hooks", ["support.assigned"])["secret"]
    # when the offers are fanned out with room for one attempt
    with stack.session() as session:
        claims, due = fan_out_and_claim(session, offers, limit=1, held={})
        session.commit()
    # then one delivery is leased with its signed message, and the other is left due
    [leased] = claims
    assert len(due) == 1 and leased.delivery_id not in due
    with stack.session() as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
    assert rows[leased.delivery_id].status == "sending"
    assert rows[leased.delivery_id].attempts == 1 == leased.attempt
    assert rows[leased.delivery_id].next_attempt_at == leased.lease_until
    assert (rows[due[0]].status, rows[due[0]].attempts) == ("pending", 0)
    body = Webhook(secret).verify(leased.message.body, leased.message.headers)
    assert body["type"] == "support.assigned"
    assert body["data"]["assignment"]["kind"] == "act"
    assert body["data"]["assignment"]["status"] == "assigned"
    assert body["data"]["person"]["name"] == "Sam"
    assert body["data"]["outreach"]["organization"]["name"].startswith("outreach-")
    # and a redelivered task makes and leases nothing
    with stack.session() as session:
        assert fan_out_and_claim(session, offers, limit=5, held={}) == ([], [])


def test_a_fan_out_leaves_the_deliveries_of_an_endpoint_held_elsewhere_due(
    pg_stack: Stack,
) -> None:
    """It holds the process's claims meanwhile, so it never waits for an endpoint's row: what
    another transaction holds is claimed after its commit, as any due delivery."""
    stack = pg_stack
    support = stack.key(Role.support_provider)
    team(stack, support, capacity=5)
    stack.post_unit(stack.key(Role.housing_provider))
    stack.post_referral(stack.key(Role.outreach))
    stack.match()
    [offer] = [event.id for event in events(stack, "offer.created")]
    hook = endpoint(stack, support, "http://127.0.0.1:9/hooks", ["support.assigned"])
    # given another process's claim holds the endpoint's row (as ledger.lock_endpoints does)
    with stack.session() as holder:
        holder.execute(
            select(WebhookEndpoint.id)
            .where(WebhookEndpoint.id == hook["id"])
            .with_for_update(key_share=True)
        ).all()
        # when the offer is fanned out with room to spare
        with stack.session() as session:
            claims, due = fan_out_and_claim(session, [offer], limit=5, held={})
            session.commit()
        holder.rollback()
    # then nothing waited and nothing was leased: the delivery is due, for a claim of its own
    assert claims == [] and len(due) == 1
    with stack.session() as session:
        made = session.get(Delivery, due[0])
        assert made is not None and (made.status, made.attempts) == ("pending", 0)
