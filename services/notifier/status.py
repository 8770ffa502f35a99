"""A delivery's states (shared by the notifier and the API that lists and replays them)."""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    pending = "pending"  # not tried yet
    sending = "sending"  # an attempt holds a lease on it (next_attempt_at is the lease's end)
    failed = "failed"  # tried; the next attempt is at next_attempt_at
    delivered = "delivered"  # a receiver answered 2xx
    dead = "dead"  # no attempt left, refused or its endpoint disabled; can be replayed


# Still to be delivered: the sweep looks at these (a `sending` one only once its lease ran out).
OPEN_STATUSES = (DeliveryStatus.pending, DeliveryStatus.failed, DeliveryStatus.sending)
