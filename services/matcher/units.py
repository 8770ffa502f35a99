"""The available units of a region, as every matching round reads them.

A round considers every available unit of its region, so reading them is on the path of every
referral. On PostgreSQL each process keeps the facts it last read of each available unit, by
row version: `xmin` (the transaction that wrote the row as it is now, so every committed change
moves it, whoever makes it) with `updated_at` (so a transaction id used again after a restore
or a failover that lost commits does not pass for the same version). A round reads only the
ids and row versions of the region's available units, and the facts of those it has not seen as
they are now; everything else comes from memory. Rounds read units once per transaction and
before changing any (a second change in one transaction keeps the same xmin; only a transaction
that read between the two could see the first). SQLite (the embedded default, one writer) reads
everything each time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import String

from shared.db import is_postgres
from shared.domain.eligibility import UnitFacts
from shared.domain.vocabulary import ProgrammeTag, UnitStatus
from shared.models import Unit

AnyRows = Select[*tuple[Any, ...]]
Facts = tuple[UnitFacts, int]  # a unit's facts and its version (for the round's final check)

_FACT_COLUMNS = (
    Unit.id,
    Unit.area,
    Unit.max_occupants,
    Unit.wheelchair_accessible,
    Unit.step_free,
    Unit.pets_allowed,
    Unit.eligibility,
    func.coalesce(Unit.available_since, Unit.created_at),
    Unit.version,
)
_AVAILABLE = (Unit.region == bindparam("region"), Unit.status == UnitStatus.available)
_ALL_FACTS = select(*_FACT_COLUMNS).where(*_AVAILABLE)
_ROW_VERSION: ColumnElement[str] = literal_column("xmin::text || ' ' || units.updated_at::text")
_STAMPS = select(Unit.id, _ROW_VERSION).where(*_AVAILABLE)
_FACTS_OF = select(*_FACT_COLUMNS, _ROW_VERSION).where(
    *_AVAILABLE, Unit.id == func.any(bindparam("ids", type_=ARRAY(String)))
)

# Per process and region: unit id -> (row version, facts).
_known: dict[str, dict[str, tuple[str, Facts]]] = {}


@cache
def _driver_sql(statement: AnyRows, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """The statement as the driver takes it, compiled once (enum members as their values)."""
    compiled = statement.compile(dialect=dialect)
    return compiled.string, {k: getattr(v, "value", v) for k, v in compiled.params.items()}


def _fetch(session: Session, statement: AnyRows, **parameters: Any) -> list[Any]:
    """Rows straight from the driver: its values are already the right types (aware datetimes,
    lists), and SQLAlchemy's per-row result processing cost as much as the database's work."""
    sql, defaults = _driver_sql(statement, session.get_bind().dialect)
    driver = session.connection().connection.driver_connection
    assert driver is not None
    return list(driver.execute(sql, {**defaults, **parameters}).fetchall())


def _unit(row: Any) -> Facts:
    """Facts from a row starting with _FACT_COLUMNS."""
    unit_id, area, occupants, wheelchair, step_free, pets, tags, since, version = row[:9]
    tags = tuple(map(ProgrammeTag, tags)) if tags else ()
    facts = UnitFacts(unit_id, area, occupants, wheelchair, step_free, pets, tags, since)
    return facts, version


def load_units(session: Session, region: str) -> list[Facts]:
    """The region's available units with their versions."""
    if not is_postgres(session.get_bind()):
        return [_unit(row) for row in session.execute(_ALL_FACTS, {"region": region})]
    known = _known.get(region, {})
    stamps: dict[str, str] = dict(_fetch(session, _STAMPS, region=region))
    current = {
        unit_id: known[unit_id]
        for unit_id, stamp in stamps.items()
        if unit_id in known and known[unit_id][0] == stamp
    }
    unseen = [unit_id for unit_id in stamps if unit_id not in current]
    if unseen:  # (a unit that stopped being available meanwhile is not returned)
        for row in _fetch(session, _FACTS_OF, region=region, ids=unseen):
            current[row[0]] = (row[9], _unit(row))
    _known[region] = current  # only what is available now: a unit that comes back is read again
    return [facts for _, facts in current.values()]
