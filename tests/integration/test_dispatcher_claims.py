"""Claiming outbox rows: several dispatchers on one database, leases of crashed workers,
and concurrency limits per dashboard. On PostgreSQL and SQLite, against real receivers.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.app import build_dispatcher
from engine.crypto import SecretCipher
from engine.registry.models import STATUS_WEBHOOKS_DISABLED, DashboardRegistration
from engine.registry.service import RegistryService
from engine.store.base import utcnow
from engine.store.database import Database
from engine.webhooks import dispatcher as dispatcher_module
from engine.webhooks.dispatcher import Dispatcher
from engine.webhooks.models import HELD, PENDING, SUCCEEDED, DeliveryAttempt, WebhookDelivery
from engine.webhooks.outbox import Outbox
from tests.support.constants import BACKENDS
from tests.support.live import LiveEngine
from tests.support.receiver import WebhookReceiver
from tests.support.rpc import register
from tests.support.waiting import eventually
from workflow_engine.v1 import webhook_pb2

DEADLINE = 10.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def receivers() -> Iterator[Callable[[], WebhookReceiver]]:
    made: list[WebhookReceiver] = []

    def make() -> WebhookReceiver:
        made.append(WebhookReceiver())
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


class Dispatchers:
    """Dispatchers a test builds itself; stopped at teardown."""

    def __init__(self) -> None:
        self.made: list[Dispatcher] = []

    def add(self, *dispatchers: Dispatcher) -> None:
        self.made.extend(dispatchers)

    def for_engine(self, live: LiveEngine, clock: Callable[[], datetime]) -> Dispatcher:
        """A dispatcher configured like the engine's, on its database, with its own clock."""
        dispatcher = build_dispatcher(live.engine.settings, live.engine.database, live.engine.registry, clock)
        self.add(dispatcher)
        return dispatcher


@pytest.fixture
def dispatchers() -> Iterator[Dispatchers]:
    made = Dispatchers()
    yield made
    for dispatcher in made.made:
        dispatcher.stop(timeout=2)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def queue_for_one_dashboard(
    live: LiveEngine, receiver: WebhookReceiver, count: int
) -> list[webhook_pb2.Delivery]:
    """Register agency-a with `receiver` as its dashboard and queue `count` webhook.test events for it."""
    key = register(live.channel, "agency-a", dashboard_url=receiver.url).api_key
    return send_tests(live, key, count)


def send_tests(live: LiveEngine, api_key: str, count: int, prefix: str = "") -> list[webhook_pb2.Delivery]:
    """Queue `count` webhook.test events for the key's dashboard, as the outbox writes any event.

    Not through SendTestWebhook: that one delivers at once, and these tests want the rows
    left for the dispatchers.
    """
    resolved = live.engine.registry.resolve_api_key(api_key)
    assert resolved is not None
    agency_id = resolved.identity.agency_id
    queued = []
    with live.engine.database.transaction() as tx:
        for n in range(count):
            event = webhook_pb2.WebhookEvent(type="webhook.test", agency_id=agency_id)
            event.test.note = f"{prefix}{n}"
            delivery_id = Outbox().add(tx, event)
            queued.append(
                webhook_pb2.Delivery(delivery_id=delivery_id, event_id=event.id, agency_id=agency_id)
            )
    return queued


def statuses(live: LiveEngine) -> Counter[str]:
    with live.engine.database.reader() as tx:
        return Counter(
            dict(
                tx.execute(
                    select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
                ).all()
            )
        )


def counting(dispatcher: Dispatcher) -> list[str]:
    """Record every delivery id `dispatcher` attempts."""
    attempted: list[str] = []
    lock = threading.Lock()
    attempt = dispatcher._attempt

    def attempt_and_count(job: Any) -> Any:
        with lock:
            attempted.append(job.delivery_id)
        return attempt(job)

    dispatcher._attempt = attempt_and_count  # type: ignore[method-assign]
    return attempted


# -- several dispatchers ------------------------------------------------------------------------


def test_two_dispatchers_on_one_database_deliver_every_event_exactly_once(
    backend: str,
    start_engine: Callable[..., LiveEngine],
    receivers: Callable[[], WebhookReceiver],
    dispatchers: Dispatchers,
) -> None:
    live = start_engine(
        backend,
        run_dispatcher=False,
        webhook_concurrency=8,
        webhook_concurrency_per_dashboard=4,
        webhook_retry_schedule=(0.2, 0.2),
    )
    receiver = receivers()
    receiver.respond(delay=0.002)
    keys = [register(live.channel, f"agency-{n}", dashboard_url=receiver.url).api_key for n in range(4)]
    # The first dispatcher shares the engine's database; the second has its own connections
    # and registry, as an `engine worker` process would.
    settings = live.engine.settings
    first = build_dispatcher(settings, live.engine.database, live.engine.registry)
    worker_database = Database(settings.database_url)
    second = build_dispatcher(
        settings, worker_database, RegistryService(worker_database, SecretCipher(settings.secret_key.get()))
    )
    dispatchers.add(first, second)
    by_first, by_second = counting(first), counting(second)

    with ThreadPoolExecutor(4) as pool:
        batches = list(pool.map(lambda key: send_tests(live, key, 25, "early-"), keys))
        first.start()
        second.start()
        batches += list(pool.map(lambda key: send_tests(live, key, 25, "late-"), keys))
    event_ids = {d.event_id for batch in batches for d in batch}
    assert len(event_ids) == 200

    receiver.wait_for(200, timeout=DEADLINE * 2)
    assert receiver.stays_at(200, 0.5), "an event was delivered twice"
    counts = receiver.count_by_id()
    assert set(counts) == event_ids
    assert set(counts.values()) == {1}
    for dispatcher in dispatchers.made:
        dispatcher.stop(timeout=2)
    worker_database.dispose()

    assert statuses(live) == {SUCCEEDED: 200}
    with live.engine.database.reader() as tx:
        assert tx.scalar(select(func.count()).select_from(DeliveryAttempt)) == 200
        assert set(tx.scalars(select(WebhookDelivery.attempt_count))) == {1}
    # Neither attempted what the other did; on PostgreSQL both took part. (SQLite has one
    # writer at a time and its lock is not fair: a dispatcher that keeps claiming may take
    # every row before the other gets the lock, which is allowed, a double attempt is not.)
    if backend == "postgres":
        assert by_first and by_second
    assert len(by_first) + len(by_second) == 200
    assert not set(by_first) & set(by_second)


# -- leases ---------------------------------------------------------------------------------------


def test_a_crashed_workers_claim_is_taken_over_when_its_lease_runs_out(
    backend: str,
    start_engine: Callable[..., LiveEngine],
    receivers: Callable[[], WebhookReceiver],
    dispatchers: Dispatchers,
) -> None:
    live = start_engine(backend, run_dispatcher=False, webhook_timeout_seconds=2.0)
    receiver = receivers()
    (queued,) = queue_for_one_dashboard(live, receiver, 1)

    # A worker claims the row, then dies before making the attempt.
    started = utcnow()
    crashed = dispatchers.for_engine(live, Clock(started))
    with live.engine.database.transaction() as tx:
        claimed = crashed._claim(tx, 10, Counter())
    assert [(job.delivery_id, job.agency_id) for job in claimed] == [(queued.delivery_id, "agency-a")]
    with live.engine.database.reader() as tx:
        row = tx.get(WebhookDelivery, queued.delivery_id)
        assert row is not None and row.status == PENDING and row.lease_expires_at is not None
        lease = row.lease_expires_at - started
    assert timedelta(seconds=2) < lease <= timedelta(seconds=2 + 60)

    clock = Clock(started)
    survivor = dispatchers.for_engine(live, clock)
    assert survivor.run_once() == 0
    clock.advance(lease - timedelta(seconds=1))
    assert survivor.run_once() == 0
    assert receiver.stays_at(0, 0.3), "a leased row was delivered"

    clock.advance(timedelta(seconds=2))
    assert survivor.run_once() == 1
    (request,) = receiver.wait_for(1)
    assert request.webhook_id == queued.event_id

    def settled() -> Any:
        with live.engine.database.reader() as tx:
            return tx.get(WebhookDelivery, queued.delivery_id)

    def recorded() -> Any:
        survivor.run_once()  # records the attempt that finished
        return settled()

    deadline_row = eventually(
        recorded, lambda row: row.status == SUCCEEDED, "the delivery to succeed", DEADLINE
    )
    assert deadline_row.attempt_count == 1 and deadline_row.lease_expires_at is None
    assert survivor.run_once() == 0
    assert crashed.run_once() == 0
    assert receiver.stays_at(1, 0.3)


def test_stopping_records_the_attempts_in_flight(
    backend: str,
    start_engine: Callable[..., LiveEngine],
    receivers: Callable[[], WebhookReceiver],
    dispatchers: Dispatchers,
) -> None:
    live = start_engine(backend, run_dispatcher=False)
    receiver = receivers()
    receiver.respond(200, delay=0.5)
    queued = queue_for_one_dashboard(live, receiver, 3)
    dispatcher = dispatchers.for_engine(live, utcnow)
    dispatcher.start()
    receiver.wait_for(3)

    dispatcher.stop(timeout=5)  # while the receiver still holds its answers

    with live.engine.database.reader() as tx:
        rows = [tx.get(WebhookDelivery, d.delivery_id) for d in queued]
    assert [(row.status, row.attempt_count, row.lease_expires_at) for row in rows if row is not None] == [
        (SUCCEEDED, 1, None)
    ] * 3


def test_an_outcome_that_cannot_be_recorded_loses_no_other(
    backend: str,
    start_engine: Callable[..., LiveEngine],
    receivers: Callable[[], WebhookReceiver],
    dispatchers: Dispatchers,
) -> None:
    live = start_engine(backend, run_dispatcher=False)
    receiver = receivers()
    receiver.respond(200, delay=0.3)
    queued = queue_for_one_dashboard(live, receiver, 3)
    dispatcher = dispatchers.for_engine(live, utcnow)
    assert dispatcher.run_once() == 3
    receiver.wait_for(3)
    # While its attempt is in flight, one row goes: its attempt's row now breaks a foreign key.
    with live.engine.database.transaction() as tx:
        gone = tx.get(WebhookDelivery, queued[1].delivery_id)
        assert gone is not None
        tx.delete(gone)
    receiver.wait_completed(3)
    eventually(
        lambda: len(dispatcher._finished), lambda finished: finished == 3, "3 finished attempts", DEADLINE
    )

    assert dispatcher.run_once() == 0  # the batch fails; each outcome is recorded alone

    with live.engine.database.reader() as tx:
        kept = [tx.get(WebhookDelivery, queued[n].delivery_id) for n in (0, 2)]
    assert [(row.status, row.attempt_count) for row in kept if row is not None] == [(SUCCEEDED, 1)] * 2
    assert not dispatcher._in_flight, "the shares of the finished attempts were not given back"


def test_a_leased_row_is_not_claimed_by_another_dispatcher_before_its_lease_ends(
    backend: str,
    start_engine: Callable[..., LiveEngine],
    receivers: Callable[[], WebhookReceiver],
    dispatchers: Dispatchers,
) -> None:
    live = start_engine(backend, run_dispatcher=False)
    receiver = receivers()
    queued = queue_for_one_dashboard(live, receiver, 3)
    # Another worker holds a lease on the first row, written straight into the database.
    with live.engine.database.transaction() as tx:
        row = tx.get(WebhookDelivery, queued[0].delivery_id)
        assert row is not None
        row.lease_expires_at = utcnow() + timedelta(minutes=5)

    clock = Clock(utcnow())
    dispatcher = dispatchers.for_engine(live, clock)
    assert dispatcher.run_once() == 2
    receiver.wait_for(2)
    assert receiver.stays_at(2, 0.3)
    assert set(receiver.count_by_id()) == {queued[1].event_id, queued[2].event_id}

    clock.advance(timedelta(minutes=5, seconds=1))
    assert dispatcher.run_once() == 1
    receiver.wait_for(3)
    assert receiver.count_by_id() == {d.event_id: 1 for d in queued}


# -- holding ----------------------------------------------------------------------------------------


def test_an_event_committed_while_a_claim_runs_is_still_held_for_a_disabled_dashboard(
    start_engine: Callable[..., LiveEngine],
    receivers: Callable[[], WebhookReceiver],
    dispatchers: Dispatchers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PostgreSQL only: on SQLite a claim holds the write lock, so nothing commits during it.
    live = start_engine("postgres", run_dispatcher=False)
    receiver = receivers()
    register(live.channel, "agency-a", dashboard_url=receiver.url)
    with live.engine.database.transaction() as tx:
        registration = tx.get(DashboardRegistration, "agency-a")
        assert registration is not None
        registration.status = STATUS_WEBHOOKS_DISABLED
    live.engine.registry.forget("agency-a")

    dispatcher = dispatchers.for_engine(live, utcnow)
    at_select, go_on = threading.Event(), threading.Event()
    claimed: list[int] = []

    select_due = dispatcher_module._SELECT_DUE

    class PausedBeforeTheSelect:
        """The claim's SELECT (run on the driver, below SQLAlchemy's events), held at its start."""

        def execute(self, *args: Any) -> Any:
            if threading.current_thread() is claimer:
                at_select.set()
                go_on.wait(5)
            return select_due.execute(*args)

    claimer = threading.Thread(target=lambda: claimed.append(dispatcher.run_once()))
    monkeypatch.setattr(dispatcher_module, "_SELECT_DUE", PausedBeforeTheSelect())
    test_event = webhook_pb2.WebhookEvent(type="webhook.test", agency_id="agency-a")
    test_event.test.note = "raced"
    try:
        # As in production: the outbox row is written, the dispatcher wakes and starts a claim
        # before the writing transaction commits, and the commit lands during the claim.
        with live.engine.database.transaction() as tx:
            queued_id = Outbox().add(tx, test_event)
            tx.flush()
            claimer.start()
            assert at_select.wait(5), "the claim never reached its SELECT"
        go_on.set()
        claimer.join(5)
    finally:
        go_on.set()

    assert dispatcher.run_once() == 0
    with live.engine.database.reader() as tx:
        row = tx.get(WebhookDelivery, queued_id)
        assert row is not None
        status = row.status
    assert receiver.stays_at(0, 0.3), "a disabled dashboard got a webhook"
    assert claimed == [0]
    assert status == HELD


# -- concurrency ----------------------------------------------------------------------------------


def test_a_hanging_dashboard_does_not_delay_another_dashboards_deliveries(
    backend: str, start_engine: Callable[..., LiveEngine], receivers: Callable[[], WebhookReceiver]
) -> None:
    live = start_engine(
        backend, webhook_concurrency=4, webhook_concurrency_per_dashboard=2, webhook_timeout_seconds=15.0
    )
    slow, fast = receivers(), receivers()
    slow.respond(delay=12.0)
    slow_key = register(live.channel, "slow", dashboard_url=slow.url).api_key
    fast_key = register(live.channel, "fast", dashboard_url=fast.url).api_key

    slow_events = send_tests(live, slow_key, 8)
    slow.wait_for(2)
    fast_events = send_tests(live, fast_key, 10)
    fast.wait_for(10, timeout=8.0)
    # Every fast delivery arrived while the slow dashboard still held its first two.
    assert slow.completed == 0
    assert len(slow.requests) == 2, "more deliveries in flight to one dashboard than its limit"
    assert fast.count_by_id() == {d.event_id: 1 for d in fast_events}

    slow.release()
    slow.wait_for(8, timeout=DEADLINE)
    assert slow.count_by_id() == {d.event_id: 1 for d in slow_events}
    eventually(lambda: statuses(live), lambda seen: seen == {SUCCEEDED: 18}, "18 successes", DEADLINE)


def test_a_hanging_dashboards_backlog_does_not_starve_another_dashboard(
    backend: str, start_engine: Callable[..., LiveEngine], receivers: Callable[[], WebhookReceiver]
) -> None:
    # A claim looks at 4 x 4 = 16 due rows at a time; the slow dashboard has 40, all older.
    live = start_engine(
        backend, webhook_concurrency=4, webhook_concurrency_per_dashboard=2, webhook_timeout_seconds=15.0
    )
    slow, fast = receivers(), receivers()
    slow.respond(delay=12.0)
    slow_key = register(live.channel, "slow", dashboard_url=slow.url).api_key
    fast_key = register(live.channel, "fast", dashboard_url=fast.url).api_key

    send_tests(live, slow_key, 40)
    slow.wait_for(2)
    fast_events = send_tests(live, fast_key, 10)
    fast.wait_for(10, timeout=8.0)
    assert fast.count_by_id() == {d.event_id: 1 for d in fast_events}
    assert slow.completed == 0 and len(slow.requests) == 2
    slow.release()
