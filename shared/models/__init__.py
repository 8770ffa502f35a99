"""ORM tables, one concept per module; importing this package registers them all."""

from shared.models.audit import AuditEvent
from shared.models.base import Base, new_id, utcnow
from shared.models.idempotency import IdempotencyKey
from shared.models.matching import MatchRound, RegionMatching
from shared.models.offer import Offer
from shared.models.ops import TaskRun, WorkerHeartbeat
from shared.models.organization import ApiKey, Organization
from shared.models.outbox import EventConsumption, OutboxEvent
from shared.models.referral import Referral
from shared.models.support import SupportAssignment, SupportTeam
from shared.models.tenancy import Absence, Tenancy
from shared.models.unit import Unit
from shared.models.webhook import Delivery, DeliveryAttempt, WebhookEndpoint

__all__ = [
    "Absence",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Delivery",
    "DeliveryAttempt",
    "EventConsumption",
    "IdempotencyKey",
    "MatchRound",
    "Offer",
    "Organization",
    "OutboxEvent",
    "Referral",
    "RegionMatching",
    "SupportAssignment",
    "SupportTeam",
    "TaskRun",
    "Tenancy",
    "Unit",
    "WebhookEndpoint",
    "WorkerHeartbeat",
    "new_id",
    "utcnow",
]
