"""Figures commissioners ask for: priority bands, days to housing, retention, unmet need."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.domain.eligibility import PersonFacts, UnitFacts, age_on, is_eligible
from shared.domain.tenancy import EndReason, TenancyStatus
from shared.domain.vocabulary import Gender

BANDS = ("high", "medium", "low")


def priority_band(vulnerability_score: int) -> str:
    """high 70-100, medium 40-69, low 0-39."""
    if vulnerability_score >= 70:
        return "high"
    return "medium" if vulnerability_score >= 40 else "low"


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile with linear interpolation between closest ranks (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return round(value, 2)


def distribution(days: Sequence[float]) -> dict[str, Any]:
    return {"count": len(days), "median": percentile(days, 50), "p90": percentile(days, 90)}


@dataclass(frozen=True, slots=True)
class TenancyFacts:
    started_on: date
    status: str
    end_reason: str | None


def add_months(day: date, months: int) -> date:
    """The same day `months` later (clamped to the month's end)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(day)


def retention(tenancies: Iterable[TenancyFacts], *, months: int, today: date) -> dict[str, Any]:
    """Share of tenancies started at least `months` ago still active or ended by moving on."""
    due = [t for t in tenancies if add_months(t.started_on, months) <= today]
    kept = [
        t for t in due if t.status == TenancyStatus.active or t.end_reason == EndReason.moved_on
    ]
    rate = round(len(kept) / len(due), 4) if due else None
    return {"tenancies": len(due), "retained": len(kept), "rate": rate}


def need_profile(person: PersonFacts, on: date) -> tuple[Any, ...]:
    """What a household needs from a home, for grouping unmet need."""
    access = (
        "wheelchair"
        if person.needs_wheelchair
        else ("step_free" if person.needs_step_free else "none")
    )
    age = age_on(person.date_of_birth, on)
    programmes = tuple(
        name
        for name, applies in (
            ("veteran", person.veteran),
            ("woman", person.gender == Gender.female),
            ("family", person.children > 0),
            ("young_person", age is not None and 18 <= age <= 25),
            ("age_55_plus", age is not None and age >= 55),
        )
        if applies
    )
    return (person.occupants, access, person.pets > 0, programmes)


def unmet_need(
    waiting: Sequence[PersonFacts], units: Sequence[UnitFacts], on: date
) -> list[dict[str, Any]]:
    """Waiting households grouped by need profile, with how many units could ever fit them."""
    groups: Counter[tuple[Any, ...]] = Counter()
    example: dict[tuple[Any, ...], PersonFacts] = {}
    for person in waiting:
        profile = need_profile(person, on)
        groups[profile] += 1
        example.setdefault(
            profile,
            person._replace(areas_avoid=(), areas_acceptable=(), declined_unit_ids=frozenset()),
        )
    rows = []
    for profile, households in groups.most_common():
        occupants, access, pets, programmes = profile
        fitting = sum(1 for unit in units if is_eligible(example[profile], unit, on))
        rows.append(
            {
                "occupants": occupants,
                "access": access,
                "pets": pets,
                "eligibility": list(programmes),
                "households_waiting": households,
                "units_that_could_fit": fitting,
            }
        )
    return rows
