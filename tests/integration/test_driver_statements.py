"""Statements run on the database driver (engine.store.driver), on SQLite and PostgreSQL.

What the dispatcher's claim and its recording of outcomes rely on: a list bound element by
element whatever its length, one statement run for many rows, and values the statement carries
itself (a NULL datetime, a status) converted as SQLAlchemy would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.store import migrate
from engine.store.base import utcnow
from engine.store.database import Database
from engine.store.driver import DriverStatement, ListStatement
from engine.webhooks.models import ProviderEventReceipt
from tests.support.constants import BACKENDS

_RECEIPTS = ProviderEventReceipt.__table__
_INSERT_RECEIPT = DriverStatement(lambda _tx: insert(_RECEIPTS))
#: The listed receipts of a provider, in id order: a list and a parameter of its own.
_RECEIPTS_IN = ListStatement(
    lambda _tx, ids: (
        select(_RECEIPTS.c.event_id)
        .where(_RECEIPTS.c.event_id.in_(ids), _RECEIPTS.c.provider == bindparam("provider"))
        .order_by(_RECEIPTS.c.event_id)
    )
)
#: Moves the listed receipts to a fixed time given as a parameter, on a fixed provider (a literal).
_MOVE = ListStatement(
    lambda _tx, ids: (
        update(_RECEIPTS)
        .where(_RECEIPTS.c.event_id.in_(ids))
        .values(provider="moved", received_at=bindparam("at", type_=_RECEIPTS.c.received_at.type))
    )
)

LONG_AGO = datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
#: Sets the listed receipts to a time the statement carries (a value that needs converting).
_BACKDATE = ListStatement(
    lambda _tx, ids: update(_RECEIPTS).where(_RECEIPTS.c.event_id.in_(ids)).values(received_at=LONG_AGO)
)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(fresh_database_url(request.param))
    migrate.upgrade(database)
    yield database
    database.dispose()


def _receipt(event_id: str, provider: str = "waha") -> dict[str, object]:
    return {"provider": provider, "event_id": event_id, "received_at": utcnow()}


def test_execute_many_stores_every_row(database: Database) -> None:
    with database.transaction() as tx:
        _INSERT_RECEIPT.execute_many(tx, [_receipt(f"evt_{n}") for n in range(5)])
    with database.reader() as tx:
        stored = tx.scalars(select(_RECEIPTS.c.event_id).order_by(_RECEIPTS.c.event_id)).all()
    assert stored == [f"evt_{n}" for n in range(5)]


def test_a_list_statement_binds_lists_of_any_length(database: Database) -> None:
    with database.transaction() as tx:
        _INSERT_RECEIPT.execute_many(tx, [_receipt(f"evt_{n}") for n in range(5)])
        _INSERT_RECEIPT.execute(tx, _receipt("evt_9", provider="other"))
    with database.transaction() as tx:
        for wanted in (["evt_1"], ["evt_3", "evt_0", "evt_missing"], ["evt_4", "evt_9"], ["evt_2"]):
            found = [row[0] for row in _RECEIPTS_IN.execute(tx, wanted, {"provider": "waha"}).fetchall()]
            assert found == sorted(set(wanted) - {"evt_missing", "evt_9"})


def test_values_the_statement_carries_and_typed_parameters_are_converted(database: Database) -> None:
    at = utcnow() - timedelta(days=1)
    with database.transaction() as tx:
        _INSERT_RECEIPT.execute_many(tx, [_receipt(f"evt_{n}") for n in range(3)])
    with database.transaction() as tx:
        assert _MOVE.execute(tx, ["evt_0", "evt_2"], {"at": at}).rowcount == 2
    with database.reader() as tx:
        moved = tx.get(ProviderEventReceipt, ("moved", "evt_2"))
        kept = tx.get(ProviderEventReceipt, ("waha", "evt_1"))
    assert moved is not None and moved.received_at == at
    assert kept is not None and kept.received_at > at

    with database.transaction() as tx:
        _BACKDATE.execute(tx, ["evt_1"])
    with database.reader() as tx:
        backdated = tx.get(ProviderEventReceipt, ("waha", "evt_1"))
    assert backdated is not None and backdated.received_at == LONG_AGO


def test_a_failing_execute_many_leaves_nothing_behind(database: Database) -> None:
    with pytest.raises(IntegrityError), database.transaction() as tx:
        _INSERT_RECEIPT.execute_many(tx, [_receipt("evt_a"), _receipt("evt_b"), _receipt("evt_a")])
    with database.reader() as tx:
        assert tx.scalars(select(_RECEIPTS.c.event_id)).all() == []
