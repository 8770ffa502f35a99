"""The migrations create exactly what the models describe (alembic check), on both databases."""

from shared.migrate import check


def test_models_and_migrations_agree(database_url: str) -> None:
    check(database_url)
