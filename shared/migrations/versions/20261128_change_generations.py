"""change generations: what the API's memory watches on SQLite, which has no NOTIFY

The same changes that NOTIFY hf_changes on PostgreSQL (20261127_change_notifications) count
here in a small table, one row per subject ('units:<organization id>', 'callers'), moved by
triggers in the writing transaction; each API process reads it every few milliseconds
(services/api/freshness.py). Not a model: nothing but those triggers and that reader uses it,
and the migrations environment leaves it out of `alembic check`. A later migration that
rebuilds units, api_keys or organizations in SQLite's batch mode must create these triggers
again.

Revision ID: 8e4c2a7d5b19
Revises: 5d2b7e4a91c3
Create Date: 2026-11-28 15:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8e4c2a7d5b19"
down_revision: str | None = "5d2b7e4a91c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "change_generations"


def _bump(subject: str) -> str:
    return (
        f"INSERT INTO {TABLE} (subject, generation) VALUES ({subject}, 1)"
        " ON CONFLICT (subject) DO UPDATE SET generation = generation + 1;"
    )


UNITS_OF_NEW = _bump("'units:' || NEW.organization_id")
UNITS_OF_OLD = _bump("'units:' || OLD.organization_id")
CALLERS = _bump("'callers'")

TRIGGERS = {
    "units_inserted_generation": f"AFTER INSERT ON units BEGIN {UNITS_OF_NEW} END",
    "units_updated_generation": f"AFTER UPDATE ON units BEGIN {UNITS_OF_NEW} END",
    "units_moved_generation": "AFTER UPDATE OF organization_id ON units"
    f" WHEN OLD.organization_id IS NOT NEW.organization_id BEGIN {UNITS_OF_OLD} END",
    "units_deleted_generation": f"AFTER DELETE ON units BEGIN {UNITS_OF_OLD} END",
    # What a caller is made of; last_used_at (written once a minute per key) is not.
    "api_keys_updated_generation": "AFTER UPDATE OF revoked_at, role, secret_hash, lookup,"
    f" organization_id ON api_keys BEGIN {CALLERS} END",
    "api_keys_deleted_generation": f"AFTER DELETE ON api_keys BEGIN {CALLERS} END",
    "organizations_updated_generation": f"AFTER UPDATE ON organizations BEGIN {CALLERS} END",
    "organizations_deleted_generation": f"AFTER DELETE ON organizations BEGIN {CALLERS} END",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"CREATE TABLE {TABLE} (subject VARCHAR NOT NULL PRIMARY KEY, generation INTEGER NOT NULL)"
    )
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute(f"DROP TABLE IF EXISTS {TABLE}")
