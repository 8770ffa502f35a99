"""Rule 3, priority: who is offered which unit, and why, in one matching round."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.domain.eligibility import RULES, PersonFacts, UnitFacts, age_on, is_eligible
from shared.domain.vocabulary import Gender

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


def _age_band(person: PersonFacts, on: date) -> str:
    age = age_on(person.date_of_birth, on)
    if age is None:
        return "unknown"
    return "young" if 18 <= age <= 25 else "55+" if age >= 55 else "other"


def _area_profile(person: PersonFacts) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(person.areas_avoid), frozenset(person.areas_acceptable)


def _area_allows(areas: tuple[frozenset[str], frozenset[str]], area: str) -> bool:
    avoid, acceptable = areas
    return area not in avoid and (not acceptable or area in acceptable)


def _unit_profile(unit: UnitFacts) -> tuple[Any, ...]:
    """Everything eligibility reads about a unit, except its id."""
    return (
        unit.area,
        unit.max_occupants,
        unit.wheelchair_accessible,
        unit.step_free,
        unit.pets_allowed,
        frozenset(unit.eligibility),
    )


class _Groups:
    """Waiting people grouped by everything eligibility reads about them (declines aside).

    Groups sharing a fit profile are checked against a unit once, then filtered by area.
    """

    def __init__(self, people: Sequence[PersonFacts], on: date) -> None:
        grouped: dict[tuple[Any, ...], list[PersonFacts]] = {}
        bands: dict[date | None, str] = {}
        no_areas = (frozenset[str](), frozenset[str]())
        for person in people:
            born = person.date_of_birth
            band = bands.get(born)
            if band is None:
                band = bands[born] = _age_band(person, on)
            fit = (
                person.adults + person.children,
                person.needs_wheelchair,
                person.needs_step_free,
                person.pets > 0,
                person.veteran,
                person.gender == Gender.female,
                person.children > 0,
                band,
            )
            areas = (
                _area_profile(person) if person.areas_avoid or person.areas_acceptable else no_areas
            )
            grouped.setdefault((fit, areas), []).append(person)
        self.members: list[list[PersonFacts]] = []
        self.head_keys: list[tuple[Any, ...]] = []
        self.needs_access: list[bool] = []
        by_fit: dict[tuple[Any, ...], list[tuple[tuple[frozenset[str], frozenset[str]], int]]] = {}
        representatives: dict[tuple[Any, ...], PersonFacts] = {}
        for (fit, areas), members in grouped.items():
            members.sort(key=person_key)
            index = len(self.members)
            self.members.append(members)
            self.head_keys.append(person_key(members[0]))
            self.needs_access.append(members[0].has_access_need)
            by_fit.setdefault(fit, []).append((areas, index))
            representatives.setdefault(
                fit,
                members[0]._replace(
                    areas_avoid=(), areas_acceptable=(), declined_unit_ids=frozenset()
                ),
            )
        self.by_fit = by_fit
        self.in_area: dict[tuple[tuple[Any, ...], str], list[int]] = {}
        self.representatives = representatives
        self.on = on

    def fitting(self, unit: UnitFacts) -> list[int]:
        """Indices of the groups eligible for the unit (ignoring who declined it)."""
        indices: list[int] = []
        for fit, entries in self.by_fit.items():
            if not is_eligible(self.representatives[fit], unit, self.on):
                continue
            by_area = self.in_area.get((fit, unit.area))
            if by_area is None:
                by_area = [index for areas, index in entries if _area_allows(areas, unit.area)]
                self.in_area[(fit, unit.area)] = by_area
            indices.extend(by_area)
        return indices


class _Queue:
    """The waiting people eligible for one unit profile, as a heap over their groups' heads.

    People only leave (when offered), so each group's head only moves forward; heads of people
    taken through another queue are skipped lazily.
    """

    def __init__(self, groups: _Groups, indices: list[int]) -> None:
        self.groups = groups.members
        self.heap = [(groups.head_keys[i], i, 0) for i in indices]
        heapq.heapify(self.heap)

    def best_for(self, unit: UnitFacts, taken: set[str]) -> PersonFacts | None:
        """The first-ranked person of this queue for the unit (not taken, never declined it)."""
        heap = self.heap
        set_aside: list[tuple[tuple[Any, ...], int, int]] = []
        best: tuple[tuple[Any, ...], PersonFacts] | None = None
        while heap:
            key, group_index, position = heap[0]
            members = self.groups[group_index]
            moved = position
            while moved < len(members) and members[moved].id in taken:
                moved += 1
            if moved == len(members):
                heapq.heappop(heap)
                continue
            if moved != position:
                heapq.heapreplace(heap, (person_key(members[moved]), group_index, moved))
                continue
            if best is not None and key >= best[0]:
                break
            person = members[position]
            if unit.id not in person.declined_unit_ids:
                best = (key, person)
                break
            # This person declined this unit: look further in the group, for this unit only.
            set_aside.append(heapq.heappop(heap))
            for other in itertools.islice(members, position + 1, None):
                if other.id not in taken and unit.id not in other.declined_unit_ids:
                    other_key = person_key(other)
                    if best is None or other_key < best[0]:
                        best = (other_key, other)
                    break
        for entry in set_aside:
            heapq.heappush(heap, entry)
        return best[1] if best else None


def explain(
    person: PersonFacts,
    unit: UnitFacts,
    *,
    unit_position: int,
    units_in_round: int,
    needs_feature: bool,
    waiting: int,
) -> dict[str, Any]:
    """The inputs, the rules checked and the rank that decided an offer (stored compactly;
    `readable` adds the ordering rules, the same for every offer)."""
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
            "waiting_in_region": waiting,
        },
        "unit_order": {"position": unit_position, "units_in_round": units_in_round},
    }


def readable(explanation: dict[str, Any]) -> dict[str, Any]:
    """A stored explanation with the (constant) ordering rules spelled out for people."""
    shown = dict(explanation)
    shown["rank"] = {**explanation.get("rank", {}), "person_order": list(PERSON_ORDER)}
    shown["unit_order"] = {**explanation.get("unit_order", {}), "order": list(UNIT_ORDER)}
    return shown


def plan_round(
    units: Sequence[UnitFacts], people: Sequence[PersonFacts], on: date
) -> list[OfferDecision]:
    """Offer each available unit, scarcest first, to the first-ranked eligible waiting person.

    Exact, and fast at scale: people are grouped by what eligibility reads about them, so a
    unit's candidates are the heads of the groups that fit it, kept in a heap per unit profile.
    """
    if not people:
        return []
    groups = _Groups(people, on)
    queues: dict[tuple[Any, ...], tuple[_Queue, _Queue]] = {}
    taken: set[str] = set()
    # Units in rule 3's order, taken lazily from a heap: once everyone has an offer the rest
    # are never ordered (a round usually has a few people and thousands of units).
    ordered = [(unit_key(unit), unit) for unit in units]  # (keys end in the unique unit id)
    heapq.heapify(ordered)
    decisions: list[OfferDecision] = []
    position = 0
    while ordered and len(taken) < len(people):
        unit = heapq.heappop(ordered)[1]
        position += 1
        profile = _unit_profile(unit)
        if profile not in queues:
            fitting = groups.fitting(unit)
            queues[profile] = (
                _Queue(groups, [index for index in fitting if groups.needs_access[index]]),
                _Queue(groups, fitting),
            )
        with_access_needs, everyone = queues[profile]
        chosen = with_access_needs.best_for(unit, taken) if unit.has_special_feature else None
        needs_feature = chosen is not None
        if chosen is None:
            chosen = everyone.best_for(unit, taken)
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
                    units_in_round=len(units),
                    needs_feature=needs_feature,
                    waiting=len(people),
                ),
            )
        )
    return decisions
