"""Closed vocabularies of the domain (the only values the rules know)."""

from enum import StrEnum


class OrganizationKind(StrEnum):
    outreach = "outreach"
    housing_provider = "housing_provider"
    support_provider = "support_provider"
    operations = "operations"


class Role(StrEnum):
    outreach = "outreach"
    housing_provider = "housing_provider"
    support_provider = "support_provider"
    operations = "operations"
    admin = "admin"


class ProgrammeTag(StrEnum):
    """The closed list of lawful programme targets; nothing else can restrict a unit."""

    veterans = "veterans"
    young_people = "young_people"
    age_55_plus = "age_55_plus"
    women_only = "women_only"
    families = "families"


class Gender(StrEnum):
    female = "female"
    male = "male"
    non_binary = "non_binary"
    other = "other"
    not_stated = "not_stated"


class SupportIntensity(StrEnum):
    high = "high"
    moderate = "moderate"
    low = "low"


class SupportKind(StrEnum):
    act = "act"
    icm = "icm"
    floating = "floating"


SUPPORT_KIND_FOR_INTENSITY = {
    SupportIntensity.high: SupportKind.act,
    SupportIntensity.moderate: SupportKind.icm,
    SupportIntensity.low: SupportKind.floating,
}


class ReferralStatus(StrEnum):
    waiting = "waiting"
    offered = "offered"
    accepted = "accepted"
    housed = "housed"
    withdrawn = "withdrawn"


class UnitStatus(StrEnum):
    available = "available"
    offered = "offered"
    occupied = "occupied"
    offline = "offline"


class OfferStatus(StrEnum):
    open = "open"
    accepted = "accepted"
    moved_in = "moved_in"
    declined = "declined"
    expired = "expired"
    cancelled = "cancelled"


class AssignmentStatus(StrEnum):
    pending_capacity = "pending_capacity"
    assigned = "assigned"
    active = "active"
    stepped_down = "stepped_down"


# Words that express "housing readiness" preconditions. Housing First refuses them outright.
READINESS_TERMS = (
    "sober",
    "sobriety",
    "abstinen",
    "clean_time",
    "drug_test",
    "drug_screen",
    "urinalysis",
    "treatment",
    "rehab",
    "detox",
    "compliance",
    "compliant",
    "ready",
    "readiness",
    "income",
    "employment",
    "evict",
    "criminal",
    "conviction",
    "offence",
    "offense",
    "background_check",
    "medication",
    "engagement",
)

HOUSING_FIRST_RULE = (
    "Housing First: a home is offered with no test of housing readiness; sobriety, treatment, "
    "drug tests, programme compliance, income, eviction or criminal-record conditions cannot be "
    "set on a unit or recorded on a referral."
)


def is_readiness_term(name: str) -> bool:
    """True if a field name or tag expresses a readiness precondition."""
    folded = name.lower().replace("-", "_").replace(" ", "_")
    return any(term in folded for term in READINESS_TERMS)
