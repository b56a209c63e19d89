"""Core statements on mapped tables; INSERT ... ON CONFLICT for SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


def dialect_insert(tx: Session, model: Any) -> Any:
    """A Core INSERT into `model`'s table offering `on_conflict_do_nothing` / `on_conflict_do_update`.

    The table rather than the entity: a Core result reports `rowcount`, the ORM one does not.
    """
    return _INSERTS[tx.get_bind().dialect.name](table_of(model))


def table_of(model: Any) -> Table:
    """The Core table of a mapped class (Core statements skip the ORM's per-row bookkeeping)."""
    return cast(Table, model.__table__)
