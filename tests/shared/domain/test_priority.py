"""Rule 3: who gets which unit, scarcest units first, and the stored explanation."""

from datetime import UTC, date, datetime, timedelta

from shared.domain.eligibility import PersonFacts, UnitFacts
from shared.domain.priority import plan_round

TODAY = date(2026, 11, 27)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def person(
    pid: str, score: int = 50, months: int = 10, day: int = 0, **facts: object
) -> PersonFacts:
    return PersonFacts(  # type: ignore[arg-type]
        id=pid,
        vulnerability_score=score,
        months_homeless=months,
        referred_at=T0 + timedelta(days=day),
        **facts,
    )


def unit(uid: str, occupants: int = 1, day: int = 0, **features: object) -> UnitFacts:
    return UnitFacts(  # type: ignore[arg-type]
        id=uid,
        area="riverside",
        max_occupants=occupants,
        available_since=T0 + timedelta(days=day),
        **features,
    )


def offers(units: list[UnitFacts], people: list[PersonFacts]) -> dict[str, str]:
    return {d.unit_id: d.referral_id for d in plan_round(units, people, TODAY)}


def test_higher_vulnerability_first_then_months_then_earliest() -> None:
    people = [person("a", 50, 10, day=1), person("b", 80), person("c", 50, 20), person("d", 50, 10)]
    assert offers([unit("u1")], people) == {"u1": "b"}
    assert offers([unit("u1")], [p for p in people if p.id != "b"]) == {"u1": "c"}
    assert offers([unit("u1")], [people[0], people[3]]) == {"u1": "d"}


def test_a_unit_with_a_special_feature_goes_first_to_someone_who_needs_it() -> None:
    people = [person("high", 99), person("wheel", 10, needs_wheelchair=True)]
    assert offers([unit("u1", wheelchair_accessible=True)], people) == {"u1": "wheel"}


def test_scarce_units_first_so_a_family_is_not_left_without_the_family_home() -> None:
    single = person("single", 90)
    family = person("family", 40, adults=2, children=2)
    units = [unit("family-home", occupants=4), unit("studio", occupants=1)]
    assert offers(units, [single, family]) == {"studio": "single", "family-home": "family"}


def test_each_person_gets_at_most_one_offer_per_round() -> None:
    result = offers([unit("u1"), unit("u2")], [person("only")])
    assert list(result.values()) == ["only"]


def test_explanation_records_inputs_rules_and_rank() -> None:
    [decision] = plan_round([unit("u1")], [person("a", 70, 12)], TODAY)
    explanation = decision.explanation
    assert explanation["inputs"]["person"]["vulnerability_score"] == 70
    assert "household_fits" in explanation["rules_checked"]
    assert explanation["rank"]["position"] == 1
