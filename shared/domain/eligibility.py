"""Rule 2, fit not merit: whether a person's household can live in a unit. Nothing else counts."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime
from typing import NamedTuple

from shared.domain.vocabulary import Gender, ProgrammeTag

EARLIEST = datetime.min.replace(tzinfo=UTC)


class PersonFacts(NamedTuple):
    """What matching may know about a waiting person: fit and priority inputs only.

    A named tuple: immutable, and cheap to build by the hundred thousand in a round.
    """

    id: str
    adults: int = 1
    children: int = 0
    pets: int = 0
    needs_wheelchair: bool = False
    needs_step_free: bool = False
    veteran: bool = False
    gender: str | None = None
    date_of_birth: date | None = None
    areas_acceptable: tuple[str, ...] = ()
    areas_avoid: tuple[str, ...] = ()
    vulnerability_score: int = 0
    months_homeless: int = 0
    referred_at: datetime = EARLIEST
    declined_unit_ids: frozenset[str] = frozenset()

    @property
    def occupants(self) -> int:
        return self.adults + self.children

    @property
    def has_access_need(self) -> bool:
        return self.needs_wheelchair or self.needs_step_free


class UnitFacts(NamedTuple):
    """What matching may know about an available unit."""

    id: str
    area: str
    max_occupants: int
    wheelchair_accessible: bool = False
    step_free: bool = False
    pets_allowed: bool = False
    eligibility: tuple[ProgrammeTag, ...] = ()
    available_since: datetime = EARLIEST

    @property
    def has_special_feature(self) -> bool:
        return self.wheelchair_accessible or self.step_free


RULES = (
    "household_fits",
    "access_needs_met",
    "pets_allowed",
    "programme_tags_admit",
    "area_not_avoided",
    "area_acceptable",
    "not_declined_before",
)


def age_on(date_of_birth: date | None, on: date) -> int | None:
    """Age in whole years on a day, or None when the date of birth is not known."""
    if date_of_birth is None:
        return None
    years = on.year - date_of_birth.year
    return years - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))


def tag_admits(tag: ProgrammeTag, person: PersonFacts, on: date) -> bool:
    """Whether one lawful programme target admits the person."""
    if tag is ProgrammeTag.veterans:
        return person.veteran
    if tag is ProgrammeTag.women_only:
        return person.gender == Gender.female
    if tag is ProgrammeTag.families:
        return person.children > 0
    age = age_on(person.date_of_birth, on)
    if age is None:
        return False
    if tag is ProgrammeTag.young_people:
        return 18 <= age <= 25
    return age >= 55  # ProgrammeTag.age_55_plus


def failed_rule(person: PersonFacts, unit: UnitFacts, on: date) -> str | None:
    """The first rule the pair fails, or None when the person is eligible for the unit."""
    if person.occupants > unit.max_occupants:
        return "household_fits"
    if person.needs_wheelchair and not unit.wheelchair_accessible:
        return "access_needs_met"
    if person.needs_step_free and not (unit.step_free or unit.wheelchair_accessible):
        return "access_needs_met"
    if person.pets > 0 and not unit.pets_allowed:
        return "pets_allowed"
    if not all(tag_admits(tag, person, on) for tag in unit.eligibility):
        return "programme_tags_admit"
    if unit.area in person.areas_avoid:
        return "area_not_avoided"
    if person.areas_acceptable and unit.area not in person.areas_acceptable:
        return "area_acceptable"
    if unit.id in person.declined_unit_ids:
        return "not_declined_before"
    return None


def is_eligible(person: PersonFacts, unit: UnitFacts, on: date) -> bool:
    """Rule 2 of Housing First matching: the household fits; merit never enters."""
    return failed_rule(person, unit, on) is None


def could_ever_fit(person: PersonFacts, units: Collection[UnitFacts], on: date) -> int:
    """How many of the units could fit the person, ignoring availability (unmet-need reports)."""
    return sum(1 for unit in units if is_eligible(person, unit, on))
