"""Alembic environment: runs migrations on the engine handed over by engine.store.migrate."""

from __future__ import annotations

from alembic import context

from engine.store.all_models import metadata

config = context.config
connectable = config.attributes["engine"]

with connectable.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite can only ALTER by copying tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
