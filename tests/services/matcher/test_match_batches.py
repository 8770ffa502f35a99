"""The matcher's task takes the events published together: one note of their regions, one
round per region, one record of them all (services/matcher/tasks.py)."""

from sqlalchemy import select

from services.matcher.rounds import serve
from services.matcher.tasks import finish, note_triggers
from shared.consumption import record_consumptions
from shared.domain.events import Consumer
from shared.domain.vocabulary import Role
from shared.models import EventConsumption, Offer, OutboxEvent, RegionMatching, Unit, utcnow
from support import Stack


def received_events(stack: Stack) -> list[OutboxEvent]:
    with stack.session() as session:
        return list(
            session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.topic == "referral.received")
                .order_by(OutboxEvent.created_at)
            )
        )


def test_a_batch_of_two_regions_is_matched_and_recorded_once(stack: Stack) -> None:
    # given referrals in two regions, each with a unit, published together
    for region in ("north", "south"):
        outreach = stack.key(Role.outreach, region=region)
        stack.post_unit(stack.key(Role.housing_provider, region=region), region=region)
        stack.post_referral(outreach, region=region)
        stack.post_referral(outreach, region=region)
    events = received_events(stack)
    ids = [event.id for event in events]
    with stack.session() as session:
        requested_before = dict(
            session.execute(select(RegionMatching.region, RegionMatching.requested)).tuples().all()
        )
    # when the matcher's task takes them (the steps match_event runs, in their transactions)
    with stack.session() as session:
        noted = note_triggers(session, [*ids, ids[0]])  # a repeated id counts once
    assert list(noted) == ids
    regions = sorted(set(noted.values()))
    assert regions == ["north", "south"]
    with stack.session() as session:
        requested = dict(
            session.execute(select(RegionMatching.region, RegionMatching.requested)).tuples().all()
        )
    assert {r: requested[r] - requested_before.get(r, 0) for r in regions} == {
        "north": 1,
        "south": 1,
    }
    for region in regions:
        stack.match(region)  # (drain's round, on this test's database)
    with stack.session() as session:
        finish(session, list(noted))
    # then each region's unit is offered, and each event is recorded once for the matcher
    with stack.session() as session:
        offered = session.scalars(select(Unit.region).join(Offer, Offer.unit_id == Unit.id))
        assert sorted(offered) == ["north", "south"]
        recorded = session.scalars(
            select(EventConsumption.event_id).where(EventConsumption.consumer == "matcher")
        ).all()
        assert set(ids) <= set(recorded)  # (and the units' events the rounds saw)
    # and the same batch delivered again notes nothing (a redelivered task)
    with stack.session() as session:
        assert note_triggers(session, ids) == {}
        finish(session, ids)  # (and finishing again records nothing twice)
    with stack.session() as session:
        again = session.scalars(
            select(EventConsumption.event_id).where(EventConsumption.consumer == "matcher")
        ).all()
        assert sorted(again) == sorted(recorded)


def test_a_round_records_the_triggers_it_saw_so_their_tasks_run_none(stack: Stack) -> None:
    # given three referrals whose tasks have not run yet (queued behind a round, under load)
    outreach = stack.key(Role.outreach)
    stack.post_unit(stack.key(Role.housing_provider))
    for _ in range(3):
        stack.post_referral(outreach)
    ids = [event.id for event in received_events(stack)]
    # when one round of the region runs
    stack.match()
    # then it recorded their events for the matcher, so their tasks ask for no round
    with stack.session() as session:
        recorded = set(
            session.scalars(
                select(EventConsumption.event_id).where(EventConsumption.consumer == "matcher")
            )
        )
        assert set(ids) <= recorded
        assert note_triggers(session, ids) == {}
        state = session.get(RegionMatching, "north")
        assert state is not None and state.completed == state.requested


def test_an_event_is_processed_once_every_consumer_recorded_it(stack: Stack) -> None:
    outreach = stack.key(Role.outreach)
    stack.post_referral(outreach)
    stack.post_referral(outreach)
    first, second = received_events(stack)
    # given the notifier finished the first event only
    with stack.session() as session:
        record_consumptions(session, [first], Consumer.notifier)
    # when the matcher records both
    with stack.session() as session:
        record_consumptions(session, [first, second], Consumer.matcher)
    # then only the first is processed (the second still waits for the notifier)
    with stack.session() as session:
        processed = dict(
            session.execute(select(OutboxEvent.id, OutboxEvent.processed_at)).tuples().all()
        )
    assert processed[first.id] is not None and processed[second.id] is None


def test_recording_an_event_a_second_time_keeps_the_first_record(stack: Stack) -> None:
    # (a round that saw an event whose own task recorded it meanwhile)
    stack.post_referral(stack.key(Role.outreach))
    [event] = received_events(stack)
    with stack.session() as session:
        record_consumptions(session, [event], Consumer.matcher)
    with stack.session() as session:
        record_consumptions(session, [event], Consumer.matcher)
        records = session.scalars(
            select(EventConsumption.consumer).where(EventConsumption.event_id == event.id)
        ).all()
    assert records == ["matcher"]


def test_a_round_tells_its_task_which_triggers_it_recorded(stack: Stack) -> None:
    # (the task then finishes only the others: none, when its events were all seen)
    outreach = stack.key(Role.outreach)
    stack.post_unit(stack.key(Role.housing_provider))
    stack.post_referral(outreach)
    stack.post_referral(outreach)
    ids = [event.id for event in received_events(stack)]
    with stack.session() as session:
        noted = note_triggers(session, ids)
    with stack.session() as session:
        recorded = serve(session, "north", now=utcnow(), ttl_hours=72)
    assert recorded is not None and set(noted) <= recorded
    # and a region already served runs no round and records nothing
    with stack.session() as session:
        assert serve(session, "north", now=utcnow(), ttl_hours=72) is None
