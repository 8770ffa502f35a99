"""Alembic environment: one database URL from the settings, sync driver."""

from alembic import context

from shared.config import get_settings
from shared.db import make_engine
from shared.models import Base

config = context.config
target_metadata = Base.metadata
# Kept by migrations alone, read by no model (20261128_change_generations): not a drift.
UNMODELLED_TABLES = frozenset({"change_generations"})


def include_object(
    _object: object, name: str | None, type_: str, reflected: bool, _compare_to: object
) -> bool:
    return not (type_ == "table" and reflected and name in UNMODELLED_TABLES)


def run_migrations() -> None:
    url = config.attributes.get("database_url") or get_settings().database_url
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
