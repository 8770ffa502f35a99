"""Event topics, and which consumers act on each (the one place routing is decided)."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    referral_received = "referral.received"
    referral_changed = "referral.changed"
    referral_withdrawn = "referral.withdrawn"
    offer_created = "offer.created"
    offer_accepted = "offer.accepted"
    offer_declined = "offer.declined"
    offer_expired = "offer.expired"
    offer_cancelled = "offer.cancelled"
    tenancy_started = "tenancy.started"
    tenancy_ended = "tenancy.ended"
    support_assigned = "support.assigned"
    support_pending_capacity = "support.pending_capacity"
    support_stepped_down = "support.stepped_down"
    support_resumed = "support.resumed"
    unit_available = "unit.available"
    unit_changed = "unit.changed"


class Consumer(StrEnum):
    matcher = "matcher"
    notifier = "notifier"


# Topics sent to webhook subscribers (API.md "Webhooks"); the others are internal.
WEBHOOK_TOPICS = frozenset(
    {
        Topic.referral_received,
        Topic.offer_created,
        Topic.offer_accepted,
        Topic.offer_declined,
        Topic.offer_expired,
        Topic.offer_cancelled,
        Topic.tenancy_started,
        Topic.tenancy_ended,
        Topic.support_assigned,
        Topic.support_pending_capacity,
        Topic.support_stepped_down,
        Topic.support_resumed,
        Topic.unit_available,
    }
)

# Changes after which a region must be matched again (rule 4: immediately).
MATCHING_TOPICS = frozenset(
    {
        Topic.referral_received,
        Topic.referral_changed,
        Topic.referral_withdrawn,
        Topic.offer_declined,
        Topic.offer_expired,
        Topic.offer_cancelled,
        Topic.tenancy_ended,
        Topic.unit_available,
        Topic.unit_changed,
    }
)


# Topics both consumers act on reach the notifier through the matcher: publishing sends them
# to the matcher, whose task forwards them to the notifier with the events its round emitted,
# in one notifier task where there were two. (The relay re-sends an event straight to any
# consumer that never recorded it.)
FORWARDED_TOPICS = MATCHING_TOPICS & WEBHOOK_TOPICS


def consumers_of(topic: str) -> tuple[Consumer, ...]:
    """Which consumers act on an event of this topic."""
    consumers: list[Consumer] = []
    if topic in MATCHING_TOPICS:
        consumers.append(Consumer.matcher)
    if topic in WEBHOOK_TOPICS:
        consumers.append(Consumer.notifier)
    return tuple(consumers)


def published_to(topic: str) -> tuple[Consumer, ...]:
    """Which consumers a publish sends an event of this topic to (see FORWARDED_TOPICS)."""
    if topic in FORWARDED_TOPICS:
        return (Consumer.matcher,)
    return consumers_of(topic)
