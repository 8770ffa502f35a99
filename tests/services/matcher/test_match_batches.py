"""The matcher's task takes the events published together: one round per region, in one
transaction with the events' record for the matcher (services/matcher/regions.py serve_batch,
serve_events)."""

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.matcher.regions import request_round, serve_batch, serve_events
from services.matcher.rounds import StaleRound
from services.matcher.tasks import behind_regions, planned
from shared import worker
from shared.consumption import record_consumptions
from shared.domain.events import Consumer
from shared.domain.vocabulary import Role
from shared.models import (
    EventConsumption,
    MatchRound,
    Offer,
    OutboxEvent,
    RegionMatching,
    Unit,
    utcnow,
)
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


def rounds_run(stack: Stack) -> int:
    with stack.session() as session:
        return session.scalar(select(func.count()).select_from(MatchRound)) or 0


def matcher_records(stack: Stack) -> list[str]:
    with stack.session() as session:
        return list(
            session.scalars(
                select(EventConsumption.event_id).where(EventConsumption.consumer == "matcher")
            )
        )


def test_a_batch_of_one_region_is_matched_and_recorded_in_its_transaction(stack: Stack) -> None:
    # given a unit and two referrals of one region, published together
    outreach = stack.key(Role.outreach)
    stack.post_unit(stack.key(Role.housing_provider))
    stack.post_referral(outreach)
    stack.post_referral(outreach)
    ids = [event.id for event in received_events(stack)]
    with stack.session() as session:  # (and a round asked for meanwhile, as the sweep does)
        request_round(session, "north")
        session.commit()
    # when the matcher's task takes them (a repeated id counts once)
    with stack.session() as session:
        assert serve_batch(session, [*ids, ids[0]], now=utcnow(), ttl_hours=72) == {}
        session.commit()
    # then one round ran, the unit is offered, and both events are recorded for the matcher
    assert rounds_run(stack) == 1
    with stack.session() as session:
        assert session.scalar(select(func.count()).select_from(Offer)) == 1
        state = session.get(RegionMatching, "north")  # (the request asked for is served too)
        assert state is not None and state.requested == state.completed == 1
        assert state.last_round_at is not None
    assert set(ids) <= set(matcher_records(stack))
    # and the same batch taken again (a redelivered task) runs no round, records nothing twice
    with stack.session() as session:
        assert serve_batch(session, ids, now=utcnow(), ttl_hours=72) == {}
        session.commit()
    assert rounds_run(stack) == 1
    assert sorted(matcher_records(stack)) == sorted(set(matcher_records(stack)))


def test_a_batch_of_two_regions_is_matched_and_recorded_once(stack: Stack) -> None:
    # given referrals in two regions, each with a unit, published together
    for region in ("north", "south"):
        outreach = stack.key(Role.outreach, region=region)
        stack.post_unit(stack.key(Role.housing_provider, region=region), region=region)
        stack.post_referral(outreach, region=region)
        stack.post_referral(outreach, region=region)
    events = received_events(stack)
    ids = [event.id for event in events]
    # when the matcher's task takes them, it does nothing in its first transaction
    with stack.session() as session:
        by_region = serve_batch(session, ids, now=utcnow(), ttl_hours=72)
        session.commit()
    assert by_region == {
        region: [event.id for event in events if event.region == region]
        for region in ("north", "south")
    }
    assert rounds_run(stack) == 0 and matcher_records(stack) == []
    # and then matches each region in a transaction of its own
    for region, region_ids in by_region.items():
        with stack.session() as session:
            serve_events(session, region, region_ids, now=utcnow(), ttl_hours=72)
            session.commit()
    # then each region's unit is offered, and each event is recorded once for the matcher
    with stack.session() as session:
        offered = session.scalars(select(Unit.region).join(Offer, Offer.unit_id == Unit.id))
        assert sorted(offered) == ["north", "south"]
    recorded = matcher_records(stack)
    assert set(ids) <= set(recorded)  # (and the units' events the rounds saw)
    assert rounds_run(stack) == 2
    # and the same events taken again (a redelivered task) run no round, record nothing twice
    for region, region_ids in by_region.items():
        with stack.session() as session:
            serve_events(session, region, region_ids, now=utcnow(), ttl_hours=72)
            session.commit()
    assert rounds_run(stack) == 2
    assert sorted(matcher_records(stack)) == sorted(recorded)


def test_a_round_records_the_triggers_it_saw_so_their_tasks_run_none(stack: Stack) -> None:
    # given three referrals whose tasks have not run yet (queued behind a round, under load)
    outreach = stack.key(Role.outreach)
    stack.post_unit(stack.key(Role.housing_provider))
    for _ in range(3):
        stack.post_referral(outreach)
    ids = [event.id for event in received_events(stack)]
    # when one round of the region runs
    stack.match()
    assert rounds_run(stack) == 1
    # then it recorded their events for the matcher, so their tasks run no round
    assert set(ids) <= set(matcher_records(stack))
    for event_id in ids:
        with stack.session() as session:
            assert serve_batch(session, [event_id], now=utcnow(), ttl_hours=72) == {}
            session.commit()
    assert rounds_run(stack) == 1
    with stack.session() as session:
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


def test_a_round_that_keeps_seeing_changes_is_left_to_the_sweep(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        worker, "get_session_factory", lambda: sessionmaker(stack.engine, expire_on_commit=False)
    )

    def always_stale() -> None:
        raise StaleRound

    # when a task's round sees a concurrent change every time it plans
    planned(always_stale, "north")
    # then the region's round is asked for, for sweep_regions to serve
    with stack.session() as session:
        assert behind_regions(session) == ["north"]
