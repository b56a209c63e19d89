"""Delivery durability: `kill -9` of `engine serve` in the middle of a burst loses no acknowledged event.

`engine serve` runs as a real subprocess (SQLite and PostgreSQL) with the `waha` provider pointing at
the ingress benchmark's stand-in WAHA, so a `waha` session is created through the sessions API and
paired by a signed `session.status` webhook through the ingress. A dashboard's webhook URL is a real
receiver (`tests.support.receiver`) in this process.

Several client threads then post a paced burst of distinct, signed WAHA `message` webhooks to
`POST /v1/webhooks/waha` (the bench's `message_webhook`: event id `evt_<tag><n>`, provider message
id `false_<sender>_<tag><n>`). Once about half of them are acknowledged (HTTP 200 with
`{"accepted": 1}`), the engine gets SIGKILL. Requests then in flight are not acknowledged; the
clients keep them and post them again (same bytes, as a provider retries) once a second engine runs
on the same database, then finish the burst.

Between the two engines the test reads the database: every event acknowledged before the kill must
be in the outbox, and the rows claimed by the dead dispatcher (lease set, attempt not recorded) are
exactly the deliveries that may reach the receiver twice (once before the kill, once after the lease
runs out). It then waits until every outbox row has succeeded and asserts:

- every acknowledged event reached the receiver, with a valid Standard Webhooks signature;
- no provider message reached it under two event ids (a re-posted event is not recorded twice);
- deliveries of the same event id more than once are at most the rows claimed at the kill, which
  are at most the dispatcher's concurrency.

The figures are printed (see them with `-s`) and written to `test-artifacts/durability-<backend>.json`.
The second engine has to wait for the dead dispatcher's leases (ENGINE_WEBHOOK_TIMEOUT_SECONDS + 30 s)
to run out, which is most of each backend's run time.
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import create_engine, func, select
from standardwebhooks import Webhook

from bench.ingress_throughput import INGRESS_PATH, message_webhook, sign, stub_waha, waha_webhook
from engine.webhooks.models import SUCCEEDED, WebhookDelivery
from tests.integration.test_serve_process import ENGINE, engine_env, free_port, wait_serving
from tests.support.constants import BACKENDS, PSK, WEBHOOK_SECRET
from tests.support.postgres import ThrowawayPostgres
from tests.support.receiver import Received, WebhookReceiver
from tests.support.waiting import eventually

AGENCY_ID = "durability-agency"
TENANT_ID = "durability-tenant"
WAHA_WEBHOOK_SECRET = "waha-webhook-secret-0123456789abcdefghij"
#: Distinct events in the burst, and after how many acknowledgements the engine is killed.
EVENTS = 2000
KILL_AFTER_ACKNOWLEDGED = 1000
#: Client threads (requests in flight at most) and the offered load of all of them together.
CLIENT_THREADS = 8
OFFERED_PER_SECOND = 250.0
#: The dispatcher's limits, set explicitly so the bound below does not depend on defaults.
CONCURRENCY = 32
CONCURRENCY_PER_DASHBOARD = 4
#: A delivery times out after this; a claimed row's lease lasts this + 30 s.
DELIVERY_TIMEOUT_SECONDS = 2
#: From the second engine's start until every outbox row has succeeded (the leases take ~32 s).
DRAIN_SECONDS = 75.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MESSAGE_RECEIVED = "message.received"


# -- the engine as a process ------------------------------------------------------------------


@dataclass
class EngineProcess:
    """One `engine serve` subprocess, its ports and its log file."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def start_engine(tmp_path: Path, database_url: str, waha_url: str, number: int) -> EngineProcess:
    """Start `engine serve` on fresh ports; return once its gRPC health is SERVING."""
    grpc_port, http_port = free_port(), free_port()
    env = engine_env(
        tmp_path,
        ENGINE_DATABASE_URL=database_url,
        ENGINE_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
        ENGINE_HTTP_ADDR=f"127.0.0.1:{http_port}",
        ENGINE_WAHA_URL=waha_url,
        ENGINE_WAHA_WEBHOOK_SECRET=WAHA_WEBHOOK_SECRET,
        ENGINE_RATE_LIMIT_RPS="100000",
        ENGINE_RATE_LIMIT_BURST="100000",
        ENGINE_WEBHOOK_TIMEOUT_SECONDS=str(DELIVERY_TIMEOUT_SECONDS),
        ENGINE_WEBHOOK_RETRY_SCHEDULE="1,1,2,5",
        ENGINE_WEBHOOK_CONCURRENCY=str(CONCURRENCY),
        ENGINE_WEBHOOK_CONCURRENCY_PER_DASHBOARD=str(CONCURRENCY_PER_DASHBOARD),
        # The variable is being renamed; both spellings, so this works before and after.
        ENGINE_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        ENGINE_ALLOW_PRIVATE_WEBHOOK_URLS="true",
    )
    log_path = tmp_path / f"engine-{number}.log"
    with log_path.open("wb") as log:
        # A file, not a pipe: nobody reads the access log while the burst runs, and a full pipe blocks.
        process = subprocess.Popen([*ENGINE, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    engine = EngineProcess(process, grpc_port, http_port, log_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            wait_serving(channel, process)
    except BaseException:
        process.kill()
        process.wait()
        print(engine.log_tail())
        raise
    return engine


def stop(engine: EngineProcess) -> None:
    if engine.process.poll() is None:
        engine.process.kill()
        engine.process.wait(30)


# -- set-up through the API and the ingress ---------------------------------------------------


def register_and_pair(engine: EngineProcess, receiver_url: str) -> str:
    """Register the dashboard, create a `waha` session and pair it through the ingress; its id."""
    with httpx.Client(base_url=engine.base_url, timeout=30) as client:
        registered = client.post(
            "/v1/internal/dashboard/register",
            headers={"Authorization": f"PSK {PSK}"},
            json={
                "agencyId": AGENCY_ID,
                "dashboardName": "Durability dashboard",
                "dashboardUrl": receiver_url,
                "webhookSecret": WEBHOOK_SECRET,
            },
        )
        assert registered.status_code == 200, registered.text
        key = {"X-API-Key": registered.json()["apiKey"]}
        created = client.post(
            "/api/v1/sessions",
            headers=key,
            json={"tenantId": TENANT_ID, "name": "durability", "provider": "waha"},
        )
        assert created.status_code == 200, created.text
        session = str(created.json()["session"]["sessionId"])
        body = waha_webhook(session, "session.status", {"name": session, "status": "WORKING"}, "evt_pair")
        paired = client.post(INGRESS_PATH, content=body, headers=signed_headers(body))
        assert paired.status_code == 200, paired.text
        assert paired.json() == {"accepted": 1, "unroutable": 0}
        shown = client.get(f"/api/v1/sessions/{session}", headers=key)
        assert shown.status_code == 200, shown.text
        assert shown.json()["session"]["status"] == "SESSION_STATUS_WORKING"
    return session


def signed_headers(body: bytes) -> dict[str, str]:
    """WAHA's signature headers for `body`."""
    return {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": sign(WAHA_WEBHOOK_SECRET, body),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }


# -- the burst --------------------------------------------------------------------------------


@dataclass
class Burst:
    """Client threads posting EVENTS distinct message webhooks, paced, surviving an engine restart.

    A request that fails (connection refused or reset, or any answer but 200 {"accepted": 1}) is not
    acknowledged: its number goes back on the retry list and is posted again, with the same body,
    once `resume` points the clients at a running engine.
    """

    session: str
    tag: str
    port: int
    acknowledged: set[int] = field(default_factory=set)
    #: Requests that got no acknowledgement, with why (for the report).
    failures: list[tuple[int, str]] = field(default_factory=list)
    _retry: list[int] = field(default_factory=list)
    _next: int = 0
    _slot: int = 0
    _epoch: float = field(default_factory=time.monotonic)
    _lock: threading.Condition = field(default_factory=threading.Condition)
    #: Whether clients may send; requests sent and not yet answered (both under `_lock`).
    _open: bool = False
    _outstanding: int = 0
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        with self._lock:
            self._open = True
        self._threads = [
            threading.Thread(target=self._client, name=f"burst-{i}", daemon=True)
            for i in range(CLIENT_THREADS)
        ]
        for thread in self._threads:
            thread.start()

    def pause(self) -> None:
        """No new requests from now on (requests already sent get an answer or an error)."""
        with self._lock:
            self._open = False

    def wait_settled(self, timeout: float) -> None:
        """Wait until every request sent before `pause` has its answer or its error."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._outstanding:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{self._outstanding} requests still unanswered after {timeout} s")
                self._lock.wait(min(left, 0.05))

    def resume(self, port: int) -> None:
        """Post to the engine on `port` from now on, the retry list first, at the offered pace."""
        with self._lock:
            self.port = port
            self._slot, self._epoch = 0, time.monotonic()
            self._open = True
            self._lock.notify_all()

    def wait_acknowledged(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.acknowledged) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(
                        f"only {len(self.acknowledged)} of {count} events acknowledged after {timeout} s"
                    )
                self._lock.wait(min(left, 0.05))

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        assert not alive, f"the burst did not finish in {timeout} s: {len(self.acknowledged)} acknowledged"

    def not_acknowledged(self) -> list[int]:
        """The events a request was sent for without acknowledgement, so far."""
        with self._lock:
            return sorted({number for number, _why in self.failures})

    def _take(self) -> tuple[int, float] | None:
        """The next event to post and when to post it; None when every event is acknowledged."""
        with self._lock:
            while True:
                if self._retry:
                    number = self._retry.pop()
                elif self._next < EVENTS:
                    number, self._next = self._next, self._next + 1
                elif len(self.acknowledged) == EVENTS:
                    return None
                else:
                    self._lock.wait(0.05)  # others' requests are still out; one may need a retry
                    continue
                at = self._epoch + self._slot / OFFERED_PER_SECOND
                self._slot += 1
                return number, at

    def _client(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while (taken := self._take()) is not None:
            number, at = taken
            time.sleep(max(0.0, at - time.monotonic()))
            # Checked and counted in one step: once `pause` returns, no request can start unseen.
            with self._lock:
                while not self._open:
                    self._lock.wait()
                self._outstanding += 1
                port = self.port
            body = message_webhook(self.session, self.tag, number)
            try:
                if connection is None or connection.port != port:
                    if connection is not None:
                        connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("POST", INGRESS_PATH, body=body, headers=signed_headers(body))
                response = connection.getresponse()
                answer = response.read()
                ok = response.status in (200, 202) and json.loads(answer).get("accepted") == 1
                why = "" if ok else f"HTTP {response.status}: {answer[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError) as error:
                if connection is not None:
                    connection.close()
                connection = None
                ok, why = False, f"{type(error).__name__}: {error}"
            with self._lock:
                self._outstanding -= 1
                if ok:
                    self.acknowledged.add(number)
                else:
                    self.failures.append((number, why))
                    self._retry.append(number)
                self._lock.notify_all()
        if connection is not None:
            connection.close()


# -- what the receiver got --------------------------------------------------------------------


@dataclass
class Deliveries:
    """The receiver's requests, parsed incrementally: by provider message id and by event id."""

    receiver: WebhookReceiver
    tag: str
    #: Every message.received event id seen per provider message id (a set: repeats are duplicates).
    events_of_message: dict[str, set[str]] = field(default_factory=dict)
    by_event_id: Counter[str] = field(default_factory=Counter)
    unverified: list[str] = field(default_factory=list)
    _seen: int = 0

    def refresh(self) -> None:
        requests = self.receiver.requests
        for request in requests[self._seen :]:
            self._add(request)
        self._seen = len(requests)

    def _add(self, request: Received) -> None:
        try:
            event = Webhook(WEBHOOK_SECRET.encode("utf-8")).verify(request.body, request.headers)
        except Exception as error:
            self.unverified.append(f"{request.webhook_id}: {type(error).__name__}: {error}")
            event = json.loads(request.body)
        if event.get("type") != MESSAGE_RECEIVED:
            return
        self.by_event_id[request.webhook_id] += 1
        message_id = event["messageReceived"]["message"]["providerMessageId"]
        self.events_of_message.setdefault(message_id, set()).add(request.webhook_id)

    def missing(self, numbers: set[int], session: str) -> list[int]:
        self.refresh()
        return sorted(
            n for n in numbers if provider_message_id(session, self.tag, n) not in self.events_of_message
        )

    @property
    def duplicates(self) -> int:
        """Deliveries of an event id beyond its first."""
        return sum(count - 1 for count in self.by_event_id.values())


def provider_message_id(session: str, tag: str, number: int) -> str:
    """The provider message id `message_webhook(session, tag, number)` carries."""
    return str(json.loads(message_webhook(session, tag, number))["payload"]["id"])


# -- the database, read between and after the engines -----------------------------------------


@dataclass(frozen=True)
class OutboxState:
    rows: int
    succeeded: int
    #: Rows a dispatcher claimed and has not recorded an attempt for.
    leased: int


def outbox_state(database_url: str) -> OutboxState:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            messages = WebhookDelivery.event_type == MESSAGE_RECEIVED

            def count(*where: Any) -> int:
                query = select(func.count()).select_from(WebhookDelivery).where(messages, *where)
                return int(connection.scalar(query) or 0)

            return OutboxState(
                rows=count(),
                succeeded=count(WebhookDelivery.status == SUCCEEDED),
                leased=count(WebhookDelivery.lease_expires_at.is_not(None)),
            )
    finally:
        engine.dispose()


# -- the test ---------------------------------------------------------------------------------


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engine.db'}"
    server: ThrowawayPostgres = request.getfixturevalue("postgres_server")
    return server.create_database(f"durability_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        # A little latency keeps deliveries in flight at the receiver most of the time, so the kill
        # usually catches some that arrived but whose success the engine never recorded.
        receiver.respond(204, body=b"", delay=0.02)
        yield receiver


@pytest.mark.parametrize("database_url", BACKENDS, indirect=True)
def test_sigkill_mid_burst_loses_no_acknowledged_event(
    database_url: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    started = time.monotonic()
    engines: list[EngineProcess] = []
    burst: Burst | None = None
    with stub_waha() as waha_url:
        try:
            first = start_engine(tmp_path, database_url, waha_url, 1)
            engines.append(first)
            session = register_and_pair(first, receiver.url)
            tag = uuid.uuid4().hex[:8]
            deliveries = Deliveries(receiver, tag)
            burst = Burst(session, tag, first.http_port)
            burst.start()
            burst_started = time.monotonic()

            # -- kill -9 in the middle of the burst --
            burst.wait_acknowledged(KILL_AFTER_ACKNOWLEDGED, timeout=40)
            burst.pause()
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(30)
            killed_at = time.monotonic()
            burst.wait_settled(timeout=30)  # the requests the dead engine had not answered fail
            acknowledged_before_kill = set(burst.acknowledged)
            in_flight_at_kill = burst.not_acknowledged()
            delivered_before_kill = receiver.requests

            at_kill = outbox_state(database_url)
            # Every acknowledged event is in the outbox (plus, maybe, some whose answer was lost).
            assert at_kill.rows >= len(acknowledged_before_kill), at_kill
            assert at_kill.rows <= len(acknowledged_before_kill) + len(in_flight_at_kill), at_kill

            # -- the second engine on the same database; the clients finish the burst --
            second = start_engine(tmp_path, database_url, waha_url, 2)
            engines.append(second)
            restarted_at = time.monotonic()
            burst.resume(second.http_port)
            burst.join(timeout=60)
            burst_seconds = time.monotonic() - burst_started
            assert len(burst.acknowledged) == EVENTS

            final = eventually(
                lambda: outbox_state(database_url),
                lambda state: state.rows == EVENTS and state.succeeded == EVENTS,
                f"all {EVENTS} message.received deliveries to succeed",
                timeout=DRAIN_SECONDS,
                interval=0.25,
            )
            drained_at = time.monotonic()
            missing = deliveries.missing(set(burst.acknowledged), session)
        finally:
            if burst is not None:
                burst.pause()
            for engine in engines:
                stop(engine)

    # Late duplicates of the leased rows have arrived by now: those rows succeeded, after their POST.
    deliveries.refresh()
    double_recorded = {m: ids for m, ids in deliveries.events_of_message.items() if len(ids) > 1}
    figures = {
        "backend": backend,
        "sent": EVENTS,
        "posts": EVENTS + len(burst.failures),
        "acknowledged": len(burst.acknowledged),
        "acknowledged_before_kill": len(acknowledged_before_kill),
        "in_flight_at_kill": len(in_flight_at_kill),
        "not_acknowledged_posts": len(burst.failures),
        "outbox_rows_at_kill": at_kill.rows,
        "deliveries_claimed_at_kill": at_kill.leased,
        "delivered_before_kill": sum(1 for r in delivered_before_kill if b'"message.received"' in r.body),
        "delivered_events": len(deliveries.by_event_id),
        "delivered_requests": sum(deliveries.by_event_id.values()),
        "duplicates": deliveries.duplicates,
        "duplicate_bound": at_kill.leased,
        "double_recorded_messages": len(double_recorded),
        "missing": len(missing),
        "unverified_signatures": len(deliveries.unverified),
        "outbox_rows_final": final.rows,
        "restart_seconds": round(restarted_at - killed_at, 2),
        "burst_seconds": round(burst_seconds, 2),
        "drain_after_restart_seconds": round(drained_at - restarted_at, 2),
        "total_seconds": round(time.monotonic() - started, 2),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"durability-{backend}.json").write_text(
        json.dumps(figures, indent=2) + "\n", encoding="utf-8"
    )
    print(
        f"\ndelivery durability ({backend}): "
        + ", ".join(f"{k}={v}" for k, v in figures.items() if k != "backend")
    )

    assert not missing, f"{len(missing)} acknowledged events never delivered, e.g. {missing[:10]}"
    assert not deliveries.unverified, deliveries.unverified[:5]
    assert not double_recorded, (
        f"messages delivered under several event ids: {list(double_recorded.items())[:5]}"
    )
    assert len(deliveries.by_event_id) == EVENTS
    # Only a row claimed by the dead dispatcher can reach the receiver twice, and at most that many
    # are claimed at once (per dashboard, and in all).
    assert at_kill.leased <= min(CONCURRENCY, CONCURRENCY_PER_DASHBOARD), at_kill
    assert deliveries.duplicates <= at_kill.leased, figures
    # Every POST a client retried was one whose answer the kill took away (none failed otherwise).
    assert {n for n, _ in burst.failures} == set(in_flight_at_kill), burst.failures[:10]
