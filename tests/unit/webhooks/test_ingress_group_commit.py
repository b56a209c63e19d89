"""Group commit in the provider ingress: concurrent events share transactions, each all or nothing.

`ProviderIngress.record` is driven directly with parsed events, from many threads, on SQLite and
PostgreSQL. A gate in the publisher holds the first event's transaction open until the other
callers are waiting, so they are recorded as one group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.registry.models import DashboardRegistration
from engine.sessions.models import Conversation, SessionBinding, StoredMessage
from engine.sessions.notices import Notice
from engine.sessions.providers import InboundMessage
from engine.store import migrate
from engine.store.base import utcnow
from engine.store.database import Database
from engine.store.driver import DriverStatement
from engine.webhooks.ingress import Outcome, ProviderIngress, Recorded
from engine.webhooks.models import ProviderEventReceipt, WebhookDelivery
from engine.webhooks.outbox import Outbox
from tests.support.constants import BACKENDS

PROVIDER = "waha"
SESSION = "ses_group"
PROVIDER_SESSION = "group-session"
GATE_TEXT = "gate"
FAILING_TEXT = "fails"


class Publisher:
    """The outbox, with a gate held by the GATE_TEXT message and a failure for FAILING_TEXT."""

    def __init__(self) -> None:
        self._outbox = Outbox()
        self.gate_entered = threading.Event()
        self.gate_open = threading.Event()

    def __call__(self, tx: Session, notice: Notice) -> None:
        assert notice.message is not None
        if notice.message.text == GATE_TEXT:
            self.gate_entered.set()
            assert self.gate_open.wait(10)
        if notice.message.text == FAILING_TEXT:
            raise RuntimeError("publishing failed")
        self._outbox.publish(tx, notice)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(fresh_database_url(request.param))
    migrate.upgrade(database)
    with database.transaction() as tx:
        tx.add(
            DashboardRegistration(
                agency_id="agency",
                dashboard_name="Dashboard",
                dashboard_url="https://dashboard.example.com/webhooks",
                webhook_secret_ciphertext=b"-",
                webhook_secret_hint="-",
            )
        )
        tx.flush()
        tx.add(
            SessionBinding(
                session_id=SESSION,
                agency_id="agency",
                tenant_id="tenant",
                name="group",
                provider=PROVIDER,
                provider_session=PROVIDER_SESSION,
                status="WORKING",
                account_id="15550001111",
            )
        )
    yield database
    database.dispose()


@pytest.fixture
def publisher() -> Publisher:
    return Publisher()


@pytest.fixture
def transactions(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the transactions the database opens (one entry each)."""
    opened: list[int] = []
    original = database.transaction

    @contextmanager
    def counted() -> Iterator[Session]:
        opened.append(1)
        with original() as tx:
            yield tx

    monkeypatch.setattr(database, "transaction", counted)
    return opened


def message(number: int, text: str = "hello", *, event_id: str = "", message_id: str = "") -> InboundMessage:
    return InboundMessage(
        provider_session=PROVIDER_SESSION,
        event_id=event_id or f"evt_{number}",
        provider_message_id=message_id or f"false_{number}",
        sender=f"1555{number % 3:07d}@c.us",
        text=text,
        sent_at=None,
    )


def wait_until_queued(ingress: ProviderIngress, waiting: int) -> None:
    """Wait until `waiting` callers queued behind the held transaction (a fixed sleep is too short
    when the machine is busy, and the late callers then commit in a group of their own)."""
    deadline = time.monotonic() + 10
    while len(ingress._queue) < waiting:
        assert time.monotonic() < deadline, f"{len(ingress._queue)} of {waiting} callers queued"
        time.sleep(0.005)


def record_behind_gate(
    ingress: ProviderIngress, publisher: Publisher, events: list[InboundMessage]
) -> list[Recorded | Exception]:
    """Record `events` concurrently while a first event holds its transaction: they queue as one group."""
    with ThreadPoolExecutor(max_workers=len(events) + 1) as pool:
        gate = pool.submit(ingress.record, PROVIDER, message(0, GATE_TEXT))
        assert publisher.gate_entered.wait(10)
        futures = [pool.submit(ingress.record, PROVIDER, event) for event in events]
        wait_until_queued(ingress, len(events))
        publisher.gate_open.set()
        assert gate.result(10).outcome is Outcome.STORED
        return [f.exception(10) or f.result() for f in futures]


def count(database: Database, model: Any) -> int:
    with database.reader() as tx:
        return int(tx.scalar(select(func.count()).select_from(model)) or 0)


def test_concurrent_events_are_stored_in_shared_transactions(
    database: Database, publisher: Publisher, transactions: list[int]
) -> None:
    ingress = ProviderIngress(database, {}, publish=publisher)
    events = [message(n) for n in range(1, 21)]

    outcomes = record_behind_gate(ingress, publisher, events)

    assert all(isinstance(o, Recorded) and o.outcome is Outcome.STORED for o in outcomes)
    assert count(database, StoredMessage) == count(database, WebhookDelivery) == 21
    with database.reader() as tx:
        assert tx.scalar(select(func.sum(Conversation.message_count))) == 21
    # The gate's transaction, then one for the 20 events that queued behind it.
    assert len(transactions) == 2


def test_an_event_failing_in_a_group_fails_alone_and_the_others_are_stored(
    database: Database, publisher: Publisher
) -> None:
    ingress = ProviderIngress(database, {}, publish=publisher)
    events = [message(n) for n in range(1, 6)] + [message(6, FAILING_TEXT)]

    outcomes = record_behind_gate(ingress, publisher, events)

    assert [o.outcome for o in outcomes[:5] if isinstance(o, Recorded)] == [Outcome.STORED] * 5
    assert isinstance(outcomes[5], RuntimeError)
    # Nothing of the failed event: no receipt (a retry is recorded), no message, no count.
    with database.reader() as tx:
        assert tx.get(ProviderEventReceipt, (PROVIDER, "evt_6")) is None
        assert tx.scalar(select(func.sum(Conversation.message_count))) == 6
    assert count(database, StoredMessage) == 6


def test_duplicates_within_a_group_are_stored_once(database: Database, publisher: Publisher) -> None:
    ingress = ProviderIngress(database, {}, publish=publisher)
    events = [message(1), message(1), message(2, message_id="false_1"), message(3)]

    outcomes = record_behind_gate(ingress, publisher, events)

    # Which of the first three comes first depends on the threads; one of them is stored.
    recorded = [o.outcome for o in outcomes if isinstance(o, Recorded)]
    assert sorted(o.value for o in recorded[:3]) == ["duplicate", "duplicate", "stored"]
    assert recorded[3] is Outcome.STORED
    assert count(database, StoredMessage) == count(database, WebhookDelivery) == 3


def test_a_driver_statement_raises_sqlalchemy_errors(database: Database) -> None:
    insert_receipt = DriverStatement(lambda _tx: ProviderEventReceipt.__table__.insert())
    with database.transaction() as tx:
        insert_receipt.execute(tx, {"provider": PROVIDER, "event_id": "evt_twice", "received_at": utcnow()})
    with pytest.raises(IntegrityError), database.transaction() as tx:
        insert_receipt.execute(tx, {"provider": PROVIDER, "event_id": "evt_twice", "received_at": utcnow()})


def test_a_driver_statement_stores_datetimes_as_the_orm_reads_them(database: Database) -> None:
    insert_receipt = DriverStatement(lambda _tx: ProviderEventReceipt.__table__.insert())
    at = utcnow()
    with database.transaction() as tx:
        insert_receipt.execute(tx, {"provider": PROVIDER, "event_id": "evt_time", "received_at": at})
    with database.reader() as tx:
        receipt = tx.get(ProviderEventReceipt, (PROVIDER, "evt_time"))
    assert receipt is not None and receipt.received_at == at
