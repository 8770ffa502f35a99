"""change notifications: units, API keys and organizations NOTIFY hf_changes (PostgreSQL)

The API remembers callers and availability markers between requests and forgets them when
these notifications arrive (services/api/freshness.py). One notification per statement and
organization (transition tables), delivered when the transaction commits. SQLite has no
NOTIFY: there the API remembers nothing.

Revision ID: 5d2b7e4a91c3
Revises: 3c9e51d0a7f2
Create Date: 2026-11-27 18:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5d2b7e4a91c3"
down_revision: str | None = "3c9e51d0a7f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNITS_CHANGED = """
CREATE FUNCTION hf_units_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('hf_changes', 'units:' || organization_id)
      FROM (SELECT DISTINCT organization_id FROM changed_new) AS owners;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('hf_changes', 'units:' || organization_id)
      FROM (SELECT DISTINCT organization_id FROM changed_old) AS owners;
  END IF;
  RETURN NULL;
END $$
"""

CALLERS_CHANGED = """
CREATE FUNCTION hf_callers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('hf_changes', 'callers');
  RETURN NULL;
END $$
"""

TRIGGERS = (
    "CREATE TRIGGER units_inserted_notify AFTER INSERT ON units"
    " REFERENCING NEW TABLE AS changed_new"
    " FOR EACH STATEMENT EXECUTE FUNCTION hf_units_changed()",
    "CREATE TRIGGER units_updated_notify AFTER UPDATE ON units"
    " REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new"
    " FOR EACH STATEMENT EXECUTE FUNCTION hf_units_changed()",
    "CREATE TRIGGER units_deleted_notify AFTER DELETE ON units"
    " REFERENCING OLD TABLE AS changed_old"
    " FOR EACH STATEMENT EXECUTE FUNCTION hf_units_changed()",
    # What a caller is made of; last_used_at (written once a minute per key) is not.
    "CREATE TRIGGER api_keys_notify"
    " AFTER UPDATE OF revoked_at, role, secret_hash, lookup, organization_id OR DELETE"
    " ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION hf_callers_changed()",
    "CREATE TRIGGER organizations_notify AFTER UPDATE OR DELETE ON organizations"
    " FOR EACH STATEMENT EXECUTE FUNCTION hf_callers_changed()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(UNITS_CHANGED)
    op.execute(CALLERS_CHANGED)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for trigger, table in (
        ("units_inserted_notify", "units"),
        ("units_updated_notify", "units"),
        ("units_deleted_notify", "units"),
        ("api_keys_notify", "api_keys"),
        ("organizations_notify", "organizations"),
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS hf_units_changed()")
    op.execute("DROP FUNCTION IF EXISTS hf_callers_changed()")
