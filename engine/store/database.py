"""Database engine and transactions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """Owns the SQLAlchemy engine and hands out transactional sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # Connections are shared between the gRPC worker threads.
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _configure_sqlite_connection)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.Lock() if self.is_sqlite else None
        #: SQLite's writers in other processes (`engine worker`) take turns on this file's lock. It
        #: only makes their waits short: SQLite itself still lets one writer at a time commit.
        self._lock_file = _open_lock_file(parsed.database) if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        if self._write_lock is None:
            with self._sessions.begin() as session:
                yield session
            return
        # SQLite has one writer at a time. Taking turns here, rather than in SQLite's busy
        # handler, keeps the wait fair and avoids the error SQLite returns at once when a
        # transaction that has read tries to write after another one committed. Between
        # processes, the busy handler would wait by sleeping (1 ms, 2 ms, … up to 100 ms);
        # a waiter on the lock file is woken the moment it is released.
        with self._write_lock, _locked(self._lock_file), self._sessions.begin() as session:
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A session for reads only; nothing it does is committed."""
        with self._sessions() as session:
            yield session

    def ping(self) -> float:
        """Run a trivial query; return its latency in milliseconds (raises if unreachable)."""
        started = time.perf_counter()
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None


def _open_lock_file(database: str | None) -> int | None:
    """The descriptor of the lock file beside a SQLite database file (None in memory)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


@contextmanager
def _locked(descriptor: int | None) -> Iterator[None]:
    """Hold the exclusive lock of `descriptor` (nothing when None); the kernel frees it if we die."""
    if descriptor is None:
        yield
        return
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed while one writer commits; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
