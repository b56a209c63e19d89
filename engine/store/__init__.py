"""Persistence: SQLAlchemy base, engine/session factory and Alembic migrations."""

from engine.store.base import Base, UTCDateTime, utcnow
from engine.store.database import Database

__all__ = ["Base", "Database", "UTCDateTime", "utcnow"]
