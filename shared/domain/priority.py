"""Rule 3, priority: who is offered which unit, and why, in one matching round."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.domain.eligibility import RULES, PersonFacts, UnitFacts, failed_rule

PERSON_ORDER = (
    "needs one of the unit's special features first",
    "higher vulnerability score",
    "more months homeless in the last 3 years",
    "earlier referral",
)
UNIT_ORDER = (
    "units with special features (wheelchair, step-free) first",
    "fewer occupants first",
    "longest available first",
)


def person_key(person: PersonFacts) -> tuple[Any, ...]:
    """Rank among people for a unit without special features (smaller is first)."""
    return (-person.vulnerability_score, -person.months_homeless, person.referred_at, person.id)


def unit_key(unit: UnitFacts) -> tuple[Any, ...]:
    """Order in which a round takes units: scarcest first (smaller is first)."""
    return (not unit.has_special_feature, unit.max_occupants, unit.available_since, unit.id)


@dataclass(frozen=True, slots=True)
class OfferDecision:
    """One unit offered to one person, with the explanation stored on the offer."""

    unit_id: str
    referral_id: str
    explanation: dict[str, Any]


class _RankedPool:
    """People in rank order; taken people are skipped, a moving head skips the taken prefix."""

    def __init__(self, people: Iterable[PersonFacts]) -> None:
        self.people = sorted(people, key=person_key)
        self.head = 0

    def first_eligible(
        self, unit: UnitFacts, on: date, taken: set[str]
    ) -> tuple[PersonFacts | None, dict[str, int]]:
        people = self.people
        while self.head < len(people) and people[self.head].id in taken:
            self.head += 1
        skipped: dict[str, int] = {}
        for index in range(self.head, len(people)):
            person = people[index]
            if person.id in taken:
                continue
            rule = failed_rule(person, unit, on)
            if rule is None:
                return person, skipped
            skipped[rule] = skipped.get(rule, 0) + 1
        return None, skipped


def explain(
    person: PersonFacts,
    unit: UnitFacts,
    *,
    unit_position: int,
    units_in_round: int,
    needs_feature: bool,
    skipped: dict[str, int],
) -> dict[str, Any]:
    """The inputs, the rules checked and the rank that decided an offer."""
    return {
        "rules_checked": list(RULES),
        "inputs": {
            "person": {
                "vulnerability_score": person.vulnerability_score,
                "months_homeless_last_3_years": person.months_homeless,
                "referred_at": person.referred_at.isoformat(),
                "occupants": person.occupants,
                "pets": person.pets,
                "needs_wheelchair": person.needs_wheelchair,
                "needs_step_free": person.needs_step_free,
            },
            "unit": {
                "max_occupants": unit.max_occupants,
                "wheelchair_accessible": unit.wheelchair_accessible,
                "step_free": unit.step_free,
                "pets_allowed": unit.pets_allowed,
                "eligibility": [str(tag) for tag in unit.eligibility],
                "area": unit.area,
            },
        },
        "rank": {
            "position": 1,
            "needs_special_feature": needs_feature,
            "higher_ranked_not_eligible": skipped,
            "person_order": list(PERSON_ORDER),
        },
        "unit_order": {
            "position": unit_position,
            "units_in_round": units_in_round,
            "order": list(UNIT_ORDER),
        },
    }


def plan_round(
    units: Sequence[UnitFacts], people: Sequence[PersonFacts], on: date
) -> list[OfferDecision]:
    """Offer each available unit, scarcest first, to the first-ranked eligible waiting person."""
    everyone = _RankedPool(people)
    with_access_needs = _RankedPool(person for person in people if person.has_access_need)
    taken: set[str] = set()
    ordered_units = sorted(units, key=unit_key)
    decisions: list[OfferDecision] = []
    for position, unit in enumerate(ordered_units, start=1):
        chosen: PersonFacts | None = None
        skipped: dict[str, int] = {}
        needs_feature = False
        if unit.has_special_feature:
            chosen, skipped = with_access_needs.first_eligible(unit, on, taken)
            needs_feature = chosen is not None
        if chosen is None:
            chosen, skipped = everyone.first_eligible(unit, on, taken)
        if chosen is None:
            continue
        taken.add(chosen.id)
        decisions.append(
            OfferDecision(
                unit_id=unit.id,
                referral_id=chosen.id,
                explanation=explain(
                    chosen,
                    unit,
                    unit_position=position,
                    units_in_round=len(ordered_units),
                    needs_feature=needs_feature,
                    skipped=skipped,
                ),
            )
        )
    return decisions
