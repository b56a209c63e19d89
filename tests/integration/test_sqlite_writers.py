"""SQLite writers in different processes take turns on a lock file, released even by a killed one.

`engine serve` and `engine worker` write to the same SQLite file. Left to SQLite, a writer that
finds the database locked sleeps and polls (1 ms, 2 ms, … 100 ms); here it waits on the lock
file beside the database and goes on the moment the other one commits.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.store import migrate
from engine.store.base import utcnow
from engine.store.database import Database
from engine.webhooks.models import ProviderEventReceipt

HOLDER = """
import sys, time
from engine.store.database import Database
database = Database(sys.argv[1])
with database.transaction():
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def url(fresh_database_url: Callable[[str], str]) -> Iterator[str]:
    url = fresh_database_url("sqlite")
    database = Database(url)
    migrate.upgrade(database)
    database.dispose()
    yield url


def _store(database: Database, event_id: str) -> None:
    with database.transaction() as tx:
        tx.add(ProviderEventReceipt(provider="waha", event_id=event_id, received_at=utcnow()))


def _count(database: Database) -> int:
    with database.reader() as tx:
        return tx.scalar(select(func.count()).select_from(ProviderEventReceipt)) or 0


def test_a_writer_waits_for_another_writers_commit_then_goes_on(url: str) -> None:
    first, second = Database(url), Database(url)  # two descriptors of the lock file, as two processes
    try:
        assert Path(f"{url.removeprefix('sqlite:///')}.lock").exists()
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with first.transaction() as tx:
                tx.add(ProviderEventReceipt(provider="waha", event_id="evt_first", received_at=utcnow()))
                holding.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(10)
        writer = threading.Thread(target=_store, args=(second, "evt_second"))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive(), "the second writer did not wait for the first one's transaction"
        assert _count(second) == 0
        release.set()
        holder.join(10)
        writer.join(10)
        assert not writer.is_alive()
        assert _count(second) == 2
    finally:
        first.dispose()
        second.dispose()


def test_the_lock_of_a_killed_writer_is_released(url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    database = Database(url)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        writer = threading.Thread(target=_store, args=(database, "evt_after"))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive(), "the writer did not wait for the other process's transaction"
        holder.kill()
        holder.wait(10)
        started = time.monotonic()
        writer.join(10)
        assert not writer.is_alive()
        assert time.monotonic() - started < 5
        assert _count(database) == 1
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        database.dispose()
