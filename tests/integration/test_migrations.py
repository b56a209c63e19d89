"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from engine.store import migrate
from engine.store.all_models import metadata
from engine.store.database import Database


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_match_the_models(backend: str, fresh_database_url: Callable[[str], str]) -> None:
    database = Database(fresh_database_url(backend))
    try:
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
            tables = set(inspect(connection).get_table_names())
    finally:
        database.dispose()
    assert differences == []
    assert set(metadata.tables) <= tables


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_run_down_to_nothing_and_up_again(
    backend: str, fresh_database_url: Callable[[str], str]
) -> None:
    database = Database(fresh_database_url(backend))
    try:
        migrate.upgrade(database)
        command.downgrade(migrate.alembic_config(database), "base")
        with database.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(database)
        with database.engine.connect() as connection:
            assert set(metadata.tables) <= set(inspect(connection).get_table_names())
    finally:
        database.dispose()
