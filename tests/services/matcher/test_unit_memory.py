"""The matcher remembers the facts of available units between rounds (PostgreSQL, by row
version): whatever changes a unit, and whoever changes it, the next round sees the change."""

from __future__ import annotations

from sqlalchemy import select, update

from services.matcher.units import _ALL_FACTS, _unit, load_units
from shared.domain.vocabulary import Role
from shared.models import Offer, Unit
from support import Stack


def read_everything(stack: Stack) -> list[object]:
    with stack.session() as session:
        return sorted(_unit(row) for row in session.execute(_ALL_FACTS, {"region": "north"}))


def remembered(stack: Stack) -> list[object]:
    with stack.session() as session:
        return sorted(load_units(session, "north"))


def test_what_is_remembered_is_what_the_rows_say_after_any_change(pg_stack: Stack) -> None:
    provider = pg_stack.key(Role.housing_provider)
    units = [pg_stack.post_unit(provider, area=f"area {n}") for n in range(4)]
    assert remembered(pg_stack) == read_everything(pg_stack) and len(read_everything(pg_stack)) == 4
    # through the API: a feature changes, a unit goes offline
    changed = pg_stack.client.patch(
        f"/v1/units/{units[0]['id']}", json={"max_occupants": 4}, headers=provider
    )
    offline = pg_stack.client.patch(
        f"/v1/units/{units[1]['id']}", json={"status": "offline"}, headers=provider
    )
    assert changed.status_code == offline.status_code == 200
    # straight in the database, as nothing in the service does: the version is left alone
    with pg_stack.session() as session:
        session.execute(update(Unit).where(Unit.id == units[2]["id"]).values(area="harbour"))
    after = remembered(pg_stack)
    assert after == read_everything(pg_stack)
    facts = {unit.id: unit for unit, _ in after}  # type: ignore[attr-defined]
    assert facts[units[0]["id"]].max_occupants == 4
    assert units[1]["id"] not in facts
    assert facts[units[2]["id"]].area == "harbour"
    # a unit that comes back is read again
    back = pg_stack.client.patch(
        f"/v1/units/{units[1]['id']}", json={"status": "available", "area": "docks"},
        headers=provider,
    )  # fmt: skip
    assert back.status_code == 200
    facts = {unit.id: unit for unit, _ in remembered(pg_stack)}  # type: ignore[attr-defined]
    assert facts[units[1]["id"]].area == "docks"
    assert remembered(pg_stack) == read_everything(pg_stack)


def test_a_round_sees_a_change_made_after_the_last_round(pg_stack: Stack) -> None:
    outreach, provider = pg_stack.key(Role.outreach), pg_stack.key(Role.housing_provider)
    unit = pg_stack.post_unit(provider, area="harbour")
    person = pg_stack.post_referral(outreach, areas={"acceptable": [], "avoid": ["harbour"]})
    pg_stack.match()  # the unit is remembered as in the area the person avoids
    with pg_stack.session() as session:
        assert session.scalars(select(Offer)).all() == []
    moved = pg_stack.client.patch(
        f"/v1/units/{unit['id']}", json={"area": "docks"}, headers=provider
    )
    assert moved.status_code == 200
    pg_stack.match()
    with pg_stack.session() as session:
        [offer] = session.scalars(select(Offer)).all()
        assert (offer.unit_id, offer.referral_id) == (unit["id"], person["id"])
