"""Rule 2 (fit, not merit) and that readiness conditions cannot be expressed."""

from datetime import date

import pytest

from shared.domain.eligibility import PersonFacts, UnitFacts, age_on, failed_rule, is_eligible
from shared.domain.vocabulary import ProgrammeTag, is_readiness_term

TODAY = date(2026, 11, 27)


def person(**facts: object) -> PersonFacts:
    return PersonFacts(id="p", **facts)  # type: ignore[arg-type]


def unit(**facts: object) -> UnitFacts:
    values: dict[str, object] = {"id": "u", "area": "riverside", "max_occupants": 2}
    values.update(facts)
    return UnitFacts(**values)  # type: ignore[arg-type]


def test_given_a_household_that_fits_then_eligible() -> None:
    assert is_eligible(person(adults=1, children=1), unit(max_occupants=2), TODAY)


@pytest.mark.parametrize(
    ("who", "where", "rule"),
    [
        ({"adults": 2, "children": 1}, {"max_occupants": 2}, "household_fits"),
        ({"needs_wheelchair": True}, {"step_free": True}, "access_needs_met"),
        ({"needs_step_free": True}, {}, "access_needs_met"),
        ({"pets": 1}, {"pets_allowed": False}, "pets_allowed"),
        ({"veteran": False}, {"eligibility": (ProgrammeTag.veterans,)}, "programme_tags_admit"),
        ({"gender": "male"}, {"eligibility": (ProgrammeTag.women_only,)}, "programme_tags_admit"),
        ({"children": 0}, {"eligibility": (ProgrammeTag.families,)}, "programme_tags_admit"),
        ({"areas_avoid": ("riverside",)}, {}, "area_not_avoided"),
        ({"areas_acceptable": ("harbour",)}, {}, "area_acceptable"),
        ({"declined_unit_ids": frozenset({"u"})}, {}, "not_declined_before"),
    ],
)
def test_when_one_fit_rule_fails_then_it_is_named(
    who: dict[str, object], where: dict[str, object], rule: str
) -> None:
    assert failed_rule(person(**who), unit(**where), TODAY) == rule


def test_wheelchair_accessible_unit_meets_a_step_free_need() -> None:
    assert is_eligible(person(needs_step_free=True), unit(wheelchair_accessible=True), TODAY)


@pytest.mark.parametrize(
    ("born", "tag", "admitted"),
    [
        (date(2005, 1, 1), ProgrammeTag.young_people, True),
        (date(2000, 11, 28), ProgrammeTag.young_people, True),  # 25, birthday tomorrow
        (date(2000, 11, 27), ProgrammeTag.young_people, False),  # 26 today
        (date(1971, 11, 27), ProgrammeTag.age_55_plus, True),
        (date(1971, 11, 28), ProgrammeTag.age_55_plus, False),
        (None, ProgrammeTag.age_55_plus, False),
    ],
)
def test_age_tags_use_the_date_of_birth(
    born: date | None, tag: ProgrammeTag, admitted: bool
) -> None:
    assert is_eligible(person(date_of_birth=born), unit(eligibility=(tag,)), TODAY) is admitted


def test_all_of_a_units_tags_must_admit() -> None:
    tags = (ProgrammeTag.women_only, ProgrammeTag.families)
    assert is_eligible(
        person(gender="female", children=1), unit(eligibility=tags, max_occupants=3), TODAY
    )
    assert not is_eligible(person(gender="female"), unit(eligibility=tags), TODAY)


def test_age_on() -> None:
    assert age_on(date(1979, 4, 2), TODAY) == 47


@pytest.mark.parametrize(
    "word",
    [
        "sobriety",
        "sober",
        "drug_test",
        "treatment",
        "housing_readiness",
        "compliance",
        "income",
        "never_evicted",
        "criminal_record",
        "ready",
    ],
)
def test_readiness_conditions_cannot_be_expressed(word: str) -> None:
    assert is_readiness_term(word)
    with pytest.raises(ValueError):
        ProgrammeTag(word)
    assert "sobriety" not in UnitFacts.__slots__ and "treatment" not in PersonFacts.__slots__


@pytest.mark.parametrize("tag", list(ProgrammeTag))
def test_no_lawful_tag_looks_like_a_readiness_test(tag: ProgrammeTag) -> None:
    assert not is_readiness_term(tag.value)
