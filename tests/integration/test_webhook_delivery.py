"""Webhook delivery end to end: live engines (SQLite and PostgreSQL) posting to real receivers.

Each engine retries on a short schedule (`RETRY`), so a delivery that keeps failing reaches
its dead letter within a second. Events come from the sessions API (a sandbox session that
starts, pairs, receives and sends) and from SendTestWebhook. Every request a receiver gets
is checked with the `standardwebhooks` reference verifier and the `v1a` signature with PyNaCl
against the public key the engine publishes.

Suspension has no RPC yet: tests suspend by writing the registration's status and calling
`registry.forget`, and "activate" by writing it back and calling `deliveries.release_held`
(the admin tests do the same through AdminService).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from engine.registry.models import STATUS_ACTIVE, STATUS_SUSPENDED, DashboardRegistration
from engine.registry.service import CACHE_SECONDS, SECRET_OVERLAP
from engine.store.base import utcnow
from engine.webhooks.signing import signed_content
from tests.support.constants import BACKENDS, WEBHOOK_SECRET
from tests.support.live import LiveEngine
from tests.support.receiver import Received, Reply, WebhookReceiver
from tests.support.rpc import MASTER_AUTH, Metadata, api_key_auth, register
from tests.support.waiting import WAIT_SECONDS, eventually
from workflow_engine.v1 import (
    common_pb2,
    registry_pb2,
    registry_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    webhook_pb2,
    webhook_pb2_grpc,
)

#: Seconds before each retry: three attempts in all, the last well within a second.
RETRY = (0.2, 0.2)
WHSEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PLAIN_SECRET = "plain-dashboard-secret-0123456789abcdefgh"
OTHER_WHSEC_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()

Delivery = webhook_pb2.Delivery


# -- helpers ------------------------------------------------------------------------------------


def status_of(delivery: Delivery) -> str:
    return str(webhook_pb2.DeliveryStatus.Name(delivery.status)).removeprefix("DELIVERY_STATUS_")


def verifier(secret: str) -> Webhook:
    """The reference verifier for a dashboard secret: `whsec_` base64, anything else its UTF-8 bytes."""
    return Webhook(secret) if secret.startswith("whsec_") else Webhook(secret.encode("utf-8"))


def verify(request: Received, secret: str) -> Any:
    """Check the request's v1 signature with the reference library; return the parsed body."""
    return verifier(secret).verify(request.body, request.headers)


def fails_to_verify(request: Received, secret: str) -> bool:
    try:
        verify(request, secret)
    except WebhookVerificationError:
        return True
    return False


def verify_v1a(request: Received, public_key: str) -> None:
    """Check the request's (single) v1a signature against the engine's `whpk_` public key."""
    key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    v1a = [entry.split(",", 1)[1] for entry in request.signatures if entry.startswith("v1a,")]
    assert len(v1a) == 1, request.signatures
    content = signed_content(request.webhook_id, int(request.headers["webhook-timestamp"]), request.body)
    key.verify(content, base64.b64decode(v1a[0]))


def v1_entries(request: Received) -> list[str]:
    return [entry for entry in request.signatures if entry.startswith("v1,")]


def only_signature(request: Received, entry: str) -> dict[str, str]:
    """The request's headers with `webhook-signature` reduced to one entry."""
    return {**request.headers, "webhook-signature": entry}


@dataclass
class Dashboard:
    """A registered dashboard with its API key, webhook secret and receiver."""

    live: LiveEngine
    agency_id: str
    api_key: str
    secret: str
    receiver: WebhookReceiver

    @property
    def auth(self) -> Metadata:
        return api_key_auth(self.api_key)

    @property
    def webhooks(self) -> webhook_pb2_grpc.WebhookServiceStub:
        return webhook_pb2_grpc.WebhookServiceStub(self.live.channel)

    @property
    def sessions(self) -> sessions_pb2_grpc.SessionsServiceStub:
        return sessions_pb2_grpc.SessionsServiceStub(self.live.channel)

    @property
    def registry(self) -> registry_pb2_grpc.RegistryServiceStub:
        return registry_pb2_grpc.RegistryServiceStub(self.live.channel)

    def send_test(self, note: str = "", auth: Metadata | None = None) -> Delivery:
        request = webhook_pb2.SendTestWebhookRequest(agency_id=self.agency_id, note=note)
        return self.webhooks.SendTestWebhook(request, metadata=auth or self.auth).delivery

    def get(self, delivery_id: str, auth: Metadata | None = None) -> Delivery:
        request = webhook_pb2.GetDeliveryRequest(agency_id=self.agency_id, delivery_id=delivery_id)
        return self.webhooks.GetDelivery(request, metadata=auth or self.auth).delivery

    def redeliver(self, delivery_id: str, auth: Metadata | None = None) -> Delivery:
        request = webhook_pb2.RedeliverWebhookRequest(agency_id=self.agency_id, delivery_id=delivery_id)
        return self.webhooks.RedeliverWebhook(request, metadata=auth or self.auth).delivery

    def list(self, auth: Metadata | None = None, **fields: Any) -> webhook_pb2.ListDeliveriesResponse:
        request = webhook_pb2.ListDeliveriesRequest(agency_id=self.agency_id, **fields)
        return self.webhooks.ListDeliveries(request, metadata=auth or self.auth)

    def all_deliveries(self, auth: Metadata | None = None) -> list[Delivery]:
        return list(self.list(auth, page_size=500).deliveries)

    def wait_status(
        self, delivery_id: str, status: str, auth: Metadata | None = None, timeout: float = WAIT_SECONDS
    ) -> Delivery:
        return eventually(
            lambda: self.get(delivery_id, auth),
            lambda d: status_of(d) == status,
            f"delivery {delivery_id} to be {status}",
            timeout,
        )

    def wait_settled(self, auth: Metadata | None = None) -> list[Delivery]:
        """Wait until none of the dashboard's deliveries is PENDING; return them all."""
        return eventually(
            lambda: self.all_deliveries(auth),
            lambda ds: all(status_of(d) != "PENDING" for d in ds),
            f"every delivery of {self.agency_id} to settle",
        )

    def config(self) -> registry_pb2.DashboardConfig:
        request = registry_pb2.GetDashboardConfigRequest(agency_id=self.agency_id)
        return self.registry.GetDashboardConfig(request, metadata=self.auth).config

    # -- producing session events --

    def working_session(self, tenant_id: str = "t1") -> common_pb2.Session:
        """A sandbox session, started and paired: session.status events."""
        created = self.sessions.CreateSession(
            sessions_pb2.CreateSessionRequest(agency_id=self.agency_id, tenant_id=tenant_id),
            metadata=self.auth,
        ).session
        self.sessions.StartSession(
            sessions_pb2.StartSessionRequest(agency_id=self.agency_id, session_id=created.session_id),
            metadata=self.auth,
        )
        request = sessions_pb2.GetSessionRequest(agency_id=self.agency_id, session_id=created.session_id)
        return eventually(
            lambda: self.sessions.GetSession(request, metadata=self.auth).session,
            lambda s: s.status == common_pb2.SESSION_STATUS_WORKING,
            "the session to be WORKING",
        )

    def inbound(self, session_id: str, text: str = "Hi!") -> common_pb2.Message:
        """message.received."""
        request = sessions_pb2.SimulateInboundMessageRequest(
            agency_id=self.agency_id, session_id=session_id, text=text, **{"from": "15550003333"}
        )
        return self.sessions.SimulateInboundMessage(request, metadata=self.auth).message

    def send_message(self, session_id: str, text: str = "Hello") -> common_pb2.Message:
        """message.status events (SENT, DELIVERED, READ)."""
        request = sessions_pb2.SendMessageRequest(
            agency_id=self.agency_id, session_id=session_id, to="+1 555 000 2222", text=text
        )
        return self.sessions.SendMessage(request, metadata=self.auth).message


def set_status(live: LiveEngine, agency_id: str, status: str) -> None:
    """Change a registration's status behind the API (suspend/activate RPCs come later)."""
    with live.engine.database.transaction() as tx:
        tx.execute(
            update(DashboardRegistration)
            .where(DashboardRegistration.agency_id == agency_id)
            .values(status=status)
        )
    live.engine.registry.forget(agency_id)


def activate(live: LiveEngine, agency_id: str) -> int:
    set_status(live, agency_id, STATUS_ACTIVE)
    return live.engine.deliveries.release_held(agency_id)


def wait_dashboard_status(board: Dashboard, status: int) -> None:
    """GetDashboardConfig shows `status` (registrations are cached for up to CACHE_SECONDS)."""
    eventually(
        lambda: board.config().status,
        lambda seen: seen == status,
        f"the dashboard status to be {common_pb2.DashboardStatus.Name(status)}",
        timeout=CACHE_SECONDS + WAIT_SECONDS,
    )


def grpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def attempts_of(delivery: Delivery) -> list[tuple[int, int]]:
    return [(a.attempt_number, a.response_status) for a in delivery.attempts]


def seconds_between(earlier: Any, later: Any) -> float:
    return (later.ToDatetime() - earlier.ToDatetime()).total_seconds()


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def receivers() -> Iterator[Callable[[], WebhookReceiver]]:
    """Factory of receivers, all closed at teardown."""
    made: list[WebhookReceiver] = []

    def make() -> WebhookReceiver:
        receiver = WebhookReceiver()
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def hub(backend: str, start_engine: Callable[..., LiveEngine]) -> Callable[..., LiveEngine]:
    """Factory: an engine on this test's backend, with the REST gateway and the short retry schedule."""

    def start(**overrides: Any) -> LiveEngine:
        settings: dict[str, Any] = {"webhook_retry_schedule": RETRY, **overrides}
        return start_engine(backend, http=True, **settings)

    return start


@pytest.fixture
def live(hub: Callable[..., LiveEngine]) -> LiveEngine:
    """An engine with the defaults of this module (overrides conftest's `live`)."""
    return hub()


@pytest.fixture
def dashboard(
    receivers: Callable[[], WebhookReceiver],
) -> Callable[..., Dashboard]:
    """Factory: register a dashboard whose webhooks go to a new receiver."""

    def make(live: LiveEngine, agency_id: str, secret: str = PLAIN_SECRET) -> Dashboard:
        receiver = receivers()
        key = register(live.channel, agency_id, dashboard_url=receiver.url, webhook_secret=secret).api_key
        return Dashboard(live, agency_id, key, secret, receiver)

    return make


def public_key_over_grpc(live: LiveEngine) -> str:
    stub = webhook_pb2_grpc.WebhookServiceStub(live.channel)
    response = stub.GetWebhookSigningKey(webhook_pb2.GetWebhookSigningKeyRequest())
    assert response.algorithm == "ed25519"
    return str(response.public_key)


def produce_events(board: Dashboard) -> tuple[common_pb2.Session, int]:
    """Every kind of event for `board`: session.status, message.received, message.status,
    webhook.test. Returns the session and how many deliveries were queued."""
    session = board.working_session()
    board.inbound(session.session_id)
    board.send_message(session.session_id)
    board.send_test("hello")
    # The sandbox acknowledges sent messages a moment later (SENT, DELIVERED, READ).
    deliveries = eventually(
        board.all_deliveries,
        lambda ds: sum(d.event_type == "message.status" for d in ds) >= 3,
        "the message's status events",
    )
    return session, len(deliveries)


# -- routing and signatures -----------------------------------------------------------------------


def test_events_reach_only_the_owning_dashboard(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    a = dashboard(live, "agency-a", WHSEC_SECRET)
    b = dashboard(live, "agency-b", PLAIN_SECRET)
    _, a_count = produce_events(a)
    b.send_test("for b")

    a_requests = a.receiver.wait_for(a_count)
    b_requests = b.receiver.wait_for(1)
    a.wait_settled()
    b.wait_settled()
    assert b.receiver.stays_at(1, 0.3)  # nothing more arrives at B

    a_ids = {d.event_id for d in a.all_deliveries()}
    b_ids = {d.event_id for d in b.all_deliveries()}
    assert len(a_ids) == a_count and len(b_ids) == 1
    assert {r.webhook_id for r in a.receiver.requests} == a_ids
    assert {r.webhook_id for r in b.receiver.requests} == b_ids
    assert {r.json["agencyId"] for r in a_requests} == {"agency-a"}
    assert {r.json["agencyId"] for r in b.receiver.requests} == {"agency-b"}
    assert b_requests[0].json["test"]["note"] == "for b"
    assert {r.json["type"] for r in a.receiver.requests} == {
        "session.status",
        "message.received",
        "message.status",
        "webhook.test",
    }


def test_every_delivery_verifies_with_the_reference_library_and_the_public_key(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    a = dashboard(live, "agency-a", WHSEC_SECRET)
    b = dashboard(live, "agency-b", PLAIN_SECRET)
    _, a_count = produce_events(a)
    b.send_test("one")
    b.send_test("two")
    a.receiver.wait_for(a_count)
    b.receiver.wait_for(2)

    key_over_grpc = public_key_over_grpc(live)
    response = httpx.get(f"{live.base_url}/api/v1/webhooks/signing-key", timeout=5)  # no credentials
    assert response.status_code == 200, response.text
    assert response.json() == {"publicKey": key_over_grpc, "algorithm": "ed25519"}
    assert key_over_grpc.startswith("whpk_")

    for board, other in ((a, b), (b, a)):
        for request in board.receiver.requests:
            assert request.method == "POST"
            assert request.headers["content-type"] == "application/json"
            assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
            body = verify(request, board.secret)
            assert body["id"] == request.webhook_id
            assert fails_to_verify(request, other.secret)
            assert len(v1_entries(request)) == 1
            verify_v1a(request, key_over_grpc)
            verify_v1a(request, response.json()["publicKey"])
            with pytest.raises(BadSignatureError):
                tampered = Received(
                    request.method, request.path, request.headers, request.body + b" ", request.arrived_at
                )
                verify_v1a(tampered, key_over_grpc)


def test_the_body_is_the_webhook_event_as_json(live: LiveEngine, dashboard: Callable[..., Dashboard]) -> None:
    board = dashboard(live, "agency-a")
    session, count = produce_events(board)
    board.receiver.wait_for(count)
    board.wait_settled()
    by_id = {d.event_id: d for d in board.all_deliveries()}
    started = time.time()

    seen: dict[str, list[dict[str, Any]]] = {}
    for request in board.receiver.requests:
        body = verify(request, board.secret)
        seen.setdefault(body["type"], []).append(body)
        assert body["id"] == request.webhook_id and body["id"].startswith("evt_")
        assert body["agencyId"] == "agency-a"
        assert {"id", "type", "timestamp", "agencyId", "tenantId", "sessionId"} <= body.keys()
        event = json_format.Parse(request.body, webhook_pb2.WebhookEvent())
        assert abs(event.timestamp.ToDatetime().timestamp() - started) < 60
        # The stored delivery carries exactly this event.
        assert by_id[event.id].event == event
        assert by_id[event.id].event_type == body["type"]
        if body["type"] != "webhook.test":
            assert body["tenantId"] == "t1"
            assert body["sessionId"] == session.session_id

    statuses = [b["sessionStatus"]["session"]["status"] for b in seen["session.status"]]
    assert "SESSION_STATUS_WORKING" in statuses
    assert all(
        b["sessionStatus"]["session"]["sessionId"] == session.session_id for b in seen["session.status"]
    )
    (received,) = seen["message.received"]
    assert received["messageReceived"]["message"]["text"] == "Hi!"
    assert received["messageReceived"]["message"]["direction"] == "MESSAGE_DIRECTION_INBOUND"
    assert {b["messageStatus"]["message"]["status"] for b in seen["message.status"]} >= {
        "MESSAGE_STATUS_SENT",
        "MESSAGE_STATUS_DELIVERED",
        "MESSAGE_STATUS_READ",
    }
    assert all(b["messageStatus"]["message"]["text"] == "Hello" for b in seen["message.status"])
    (test,) = seen["webhook.test"]
    assert test["test"] == {"note": "hello"}
    assert test["tenantId"] == "" and test["sessionId"] == ""


def test_a_changed_secret_signs_with_both_secrets_until_the_overlap_ends(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    board = dashboard(live, "agency-a", PLAIN_SECRET)
    board.send_test("before")
    (before,) = board.receiver.wait_for(1)
    assert len(v1_entries(before)) == 1

    board.registry.UpdateDashboardConfig(
        registry_pb2.UpdateDashboardConfigRequest(agency_id="agency-a", webhook_secret=OTHER_WHSEC_SECRET),
        metadata=board.auth,
    )
    with live.engine.database.reader() as tx:
        row = tx.get(DashboardRegistration, "agency-a")
        assert row is not None and row.previous_webhook_secret_expires_at is not None
        overlap = row.previous_webhook_secret_expires_at - row.updated_at
        assert abs(overlap - SECRET_OVERLAP) < timedelta(seconds=1)

    during = board.send_test("during")
    (request,) = board.receiver.wait_for_id(during.event_id)
    entries = v1_entries(request)
    assert len(entries) == 2
    verify(request, PLAIN_SECRET)
    verify(request, OTHER_WHSEC_SECRET)
    # Each signature is made with its own secret: the new one first, then the old one.
    new_entry, old_entry = entries
    verifier(OTHER_WHSEC_SECRET).verify(request.body, only_signature(request, new_entry))
    verifier(PLAIN_SECRET).verify(request.body, only_signature(request, old_entry))
    with pytest.raises(WebhookVerificationError):
        verifier(PLAIN_SECRET).verify(request.body, only_signature(request, new_entry))
    with pytest.raises(WebhookVerificationError):
        verifier(OTHER_WHSEC_SECRET).verify(request.body, only_signature(request, old_entry))

    # The overlap ends (moved into the past rather than waiting 24 hours).
    with live.engine.database.transaction() as tx:
        tx.execute(
            update(DashboardRegistration)
            .where(DashboardRegistration.agency_id == "agency-a")
            .values(previous_webhook_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
    live.engine.registry.forget("agency-a")  # written behind the registry's back
    after = board.send_test("after")
    (request,) = board.receiver.wait_for_id(after.event_id)
    assert len(v1_entries(request)) == 1
    verify(request, OTHER_WHSEC_SECRET)
    assert fails_to_verify(request, PLAIN_SECRET)
    verify_v1a(request, public_key_over_grpc(live))


# -- retries -------------------------------------------------------------------------------------


def test_a_failing_delivery_is_retried_with_the_same_event_until_it_succeeds(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    board = dashboard(live, "agency-a")
    board.receiver.enqueue(Reply(500, body=b"boom"), Reply(503, body=b"busy"))
    queued = board.send_test("retry me")
    requests = board.receiver.wait_for_id(queued.event_id, 3)
    done = board.wait_status(queued.delivery_id, "SUCCEEDED")

    assert [r.reply.status for r in requests] == [500, 503, 200]
    assert len({r.body for r in requests}) == 1
    assert {r.webhook_id for r in requests} == {queued.event_id}
    for request in requests:
        assert verify(request, board.secret)["id"] == queued.event_id
    assert done.attempt_count == 3
    assert attempts_of(done) == [(1, 500), (2, 503), (3, 200)]
    assert [a.response_body_excerpt for a in done.attempts] == ["boom", "busy", "ok"]
    assert all(a.error == "" for a in done.attempts)
    assert done.HasField("last_attempt_time") and not done.HasField("next_attempt_time")
    assert board.receiver.stays_at(3, 0.3)


def test_a_redirect_is_a_failure_and_is_not_followed(
    live: LiveEngine, dashboard: Callable[..., Dashboard], receivers: Callable[[], WebhookReceiver]
) -> None:
    board = dashboard(live, "agency-a")
    elsewhere = receivers()
    board.receiver.respond(302, location=elsewhere.url)
    queued = board.send_test("redirected")
    failed = board.wait_status(queued.delivery_id, "FAILED")

    assert attempts_of(failed) == [(1, 302), (2, 302), (3, 302)]
    assert len(board.receiver.of_id(queued.event_id)) == 3
    assert elsewhere.stays_at(0, 0.3)


def test_a_receiver_slower_than_the_timeout_fails_the_attempt(
    hub: Callable[..., LiveEngine], dashboard: Callable[..., Dashboard]
) -> None:
    live = hub(webhook_timeout_seconds=0.5)
    board = dashboard(live, "agency-a")
    board.receiver.enqueue(Reply(200, delay=5.0))
    queued = board.send_test("slow")
    done = board.wait_status(queued.delivery_id, "SUCCEEDED")

    first, second = done.attempts
    assert first.response_status == 0 and "timed out" in first.error
    assert 400 <= first.duration_ms < 5000
    assert second.response_status == 200 and second.error == ""
    assert len(board.receiver.of_id(queued.event_id)) == 2
    # The engine gave up on the first request while the receiver was still holding it.
    assert board.receiver.completed < len(board.receiver.requests)


def test_retry_after_lengthens_the_wait_up_to_the_longest_scheduled_delay(
    hub: Callable[..., LiveEngine], dashboard: Callable[..., Dashboard]
) -> None:
    live = hub(webhook_retry_schedule=(0.1, 1.2))
    board = dashboard(live, "agency-a")
    first_seen: set[str] = set()

    def respond(request: Received) -> Reply:
        """503 the first time each event arrives (with the Retry-After its note asks for), then 200."""
        if request.webhook_id in first_seen:
            return Reply(200)
        first_seen.add(request.webhook_id)
        note = request.json["test"]["note"]
        return Reply(503, retry_after=None if note == "none" else note)

    board.receiver.respond_with(respond)
    plain = board.send_test("none")
    asked = board.send_test("1")
    capped = board.send_test("3600")
    gaps: dict[str, float] = {}
    for name, queued in (("plain", plain), ("asked", asked), ("capped", capped)):
        done = board.wait_status(queued.delivery_id, "SUCCEEDED", timeout=10)
        assert attempts_of(done) == [(1, 503), (2, 200)]
        gaps[name] = seconds_between(done.attempts[0].attempt_time, done.attempts[1].attempt_time)

    # Attempt 2 is recorded after its due time, which is attempt 1's record time plus the delay.
    assert gaps["asked"] >= 1.0
    assert gaps["capped"] >= 1.2  # min(3600, the schedule's 1.2): it did not wait an hour
    assert gaps["plain"] < 0.9  # the schedule's 0.1 s (jittered), not a Retry-After
    assert gaps["plain"] >= 0.08


def test_after_the_last_attempt_the_delivery_is_failed_and_kept_for_redelivery(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    board = dashboard(live, "agency-a")
    board.receiver.respond(500)
    queued = board.send_test("dead letter")
    failed = board.wait_status(queued.delivery_id, "FAILED")

    assert failed.attempt_count == 3
    assert attempts_of(failed) == [(1, 500), (2, 500), (3, 500)]
    assert not failed.HasField("next_attempt_time")
    assert board.receiver.stays_at(3, 0.6), "a failed delivery was tried again"
    listed = board.list(status=webhook_pb2.DELIVERY_STATUS_FAILED).deliveries
    assert [d.delivery_id for d in listed] == [queued.delivery_id]

    board.receiver.respond(200)
    again = board.redeliver(queued.delivery_id)
    assert status_of(again) in ("PENDING", "SUCCEEDED")
    requests = board.receiver.wait_for_id(queued.event_id, 4)
    done = board.wait_status(queued.delivery_id, "SUCCEEDED")
    assert done.attempt_count == 4
    assert attempts_of(done)[-1] == (4, 200)
    assert len({r.body for r in requests}) == 1
    verify(requests[-1], board.secret)
    # A succeeded delivery can be sent again too.
    board.redeliver(queued.delivery_id)
    board.receiver.wait_for_id(queued.event_id, 5)
    assert board.wait_status(queued.delivery_id, "SUCCEEDED").attempt_count == 5


# -- disabling and holding ---------------------------------------------------------------------


def test_410_gone_disables_webhooks_and_holds_later_events(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    board = dashboard(live, "agency-a")
    board.receiver.respond(410)
    gone = board.send_test("gone")
    held = board.wait_status(gone.delivery_id, "HELD")
    assert attempts_of(held) == [(1, 410)]

    board.receiver.respond(200)
    later = board.send_test("later")
    board.wait_status(later.delivery_id, "HELD")
    assert board.get(later.delivery_id).attempt_count == 0
    assert board.receiver.stays_at(1, 0.5), "a disabled dashboard got a webhook"
    # Held deliveries are not failed: they cannot be redelivered, and they stay.
    error = grpc_error(lambda: board.redeliver(later.delivery_id))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    wait_dashboard_status(board, common_pb2.DASHBOARD_STATUS_WEBHOOKS_DISABLED)

    assert activate(live, "agency-a") == 2
    board.wait_status(gone.delivery_id, "SUCCEEDED")
    board.wait_status(later.delivery_id, "SUCCEEDED")
    assert board.receiver.count_by_id() == {gone.event_id: 2, later.event_id: 1}
    assert board.config().status == common_pb2.DASHBOARD_STATUS_ACTIVE


def test_deliveries_failing_for_the_disable_period_disable_webhooks(
    hub: Callable[..., LiveEngine], dashboard: Callable[..., Dashboard]
) -> None:
    # 0.0001 h = 0.36 s of nothing but failures; the schedule would go on for 1.2 s more.
    live = hub(webhook_retry_schedule=(0.15,) * 8, webhook_disable_after_hours=0.0001)
    board = dashboard(live, "agency-a")
    board.receiver.respond(500)
    queued = board.send_test("failing")
    held = board.wait_status(queued.delivery_id, "HELD")

    assert 2 <= held.attempt_count < 9
    assert all(status == 500 for _, status in attempts_of(held))
    assert seconds_between(held.attempts[0].attempt_time, held.attempts[-1].attempt_time) >= 0.36
    later = board.send_test("after disabling")
    board.wait_status(later.delivery_id, "HELD")
    assert board.receiver.stays_at(held.attempt_count, 0.4), "a disabled dashboard got a webhook"
    wait_dashboard_status(board, common_pb2.DASHBOARD_STATUS_WEBHOOKS_DISABLED)


def test_disabling_webhooks_evicts_the_cached_registration_at_once(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    board = dashboard(live, "agency-a")
    dispatcher = live.engine.dispatcher
    assert dispatcher is not None
    told: list[str] = []
    forward = dispatcher._on_status_change

    def spy(agency_id: str) -> None:
        told.append(agency_id)
        forward(agency_id)

    dispatcher._on_status_change = spy  # type: ignore[method-assign]
    assert board.config().status == common_pb2.DASHBOARD_STATUS_ACTIVE  # cached now
    board.receiver.respond(410)
    gone = board.send_test("gone")
    board.wait_status(gone.delivery_id, "HELD")
    assert told == ["agency-a"]
    assert board.config().status == common_pb2.DASHBOARD_STATUS_WEBHOOKS_DISABLED


def test_a_success_resets_the_failing_period(
    hub: Callable[..., LiveEngine], dashboard: Callable[..., Dashboard]
) -> None:
    live = hub(webhook_retry_schedule=(0.15,) * 8, webhook_disable_after_hours=0.0001)
    board = dashboard(live, "agency-a")
    # Failures over more than the disable period, but a success in between each time.
    failures: list[Any] = []
    for index in range(10):
        board.receiver.enqueue(Reply(500))
        queued = board.send_test(f"flaky {index}")
        done = board.wait_status(queued.delivery_id, "SUCCEEDED")
        assert attempts_of(done) == [(1, 500), (2, 200)]
        failures.append(done.attempts[0].attempt_time)
        if seconds_between(failures[0], failures[-1]) > 0.5:
            break
    assert seconds_between(failures[0], failures[-1]) > 0.5
    with live.engine.database.reader() as tx:
        registration = tx.get(DashboardRegistration, "agency-a")
        assert registration is not None
        assert registration.status == STATUS_ACTIVE
        assert registration.webhooks_failing_since is None


def test_a_suspended_dashboards_events_are_held_then_released_on_activation(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    board = dashboard(live, "agency-a")
    first = board.send_test("before suspension")
    board.wait_status(first.delivery_id, "SUCCEEDED")
    set_status(live, "agency-a", STATUS_SUSPENDED)

    # The dashboard's key is refused now; the master key still acts for it.
    held = [board.send_test(f"held {n}", auth=MASTER_AUTH) for n in range(3)]
    for queued in held:
        board.wait_status(queued.delivery_id, "HELD", auth=MASTER_AUTH)
    assert board.receiver.stays_at(1, 0.5), "a suspended dashboard got a webhook"
    listed = board.list(MASTER_AUTH, status=webhook_pb2.DELIVERY_STATUS_HELD).deliveries
    assert {d.delivery_id for d in listed} == {q.delivery_id for q in held}

    assert activate(live, "agency-a") == 3
    for queued in held:
        done = board.wait_status(queued.delivery_id, "SUCCEEDED")
        assert done.attempt_count == 1
    assert board.receiver.count_by_id() == {first.event_id: 1, **{q.event_id: 1 for q in held}}


def test_a_dashboard_on_a_private_address_is_refused_and_gets_no_request_unless_allowed(
    hub: Callable[..., LiveEngine], receivers: Callable[[], WebhookReceiver]
) -> None:
    live = hub(allow_private_webhook_urls=False)
    receiver = receivers()  # listens on 127.0.0.1
    # Registration refuses a URL that resolves into the engine's own network...
    refused = grpc_error(lambda: register(live.channel, "agency-a", dashboard_url=receiver.url))
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "dashboardUrl" in (refused.details() or "")
    # ...and every delivery checks again: a name that resolves inward later gets nothing.
    key = register(live.channel, "agency-a", dashboard_url="https://dashboard.example.com/hooks").api_key
    with live.engine.database.transaction() as tx:
        registration = tx.get(DashboardRegistration, "agency-a")
        assert registration is not None
        registration.dashboard_url = receiver.url
    live.engine.registry.forget("agency-a")
    board = Dashboard(live, "agency-a", key, WEBHOOK_SECRET, receiver)
    queued = board.send_test("internal")
    failed = board.wait_status(queued.delivery_id, "FAILED")
    assert attempts_of(failed) == [(1, 0), (2, 0), (3, 0)]
    assert all("non-public" in attempt.error for attempt in failed.attempts)
    assert board.receiver.requests == []


# -- the deliveries API ----------------------------------------------------------------------------


def test_list_deliveries_filters_and_pages(live: LiveEngine, dashboard: Callable[..., Dashboard]) -> None:
    board = dashboard(live, "agency-a")
    board.receiver.respond_with(
        lambda request: Reply(500) if request.json.get("test", {}).get("note") == "fail" else None
    )
    board.working_session()
    tests = [board.send_test("ok") for _ in range(5)] + [board.send_test("fail") for _ in range(2)]
    everything = board.wait_settled()
    session_events = [d for d in everything if d.event_type == "session.status"]
    assert len(session_events) >= 2
    assert len(everything) == len(tests) + len(session_events)

    def ids(**fields: Any) -> set[str]:
        return {d.delivery_id for d in board.list(page_size=100, **fields).deliveries}

    failed_ids = {q.delivery_id for q in tests[5:]}
    assert ids(status=webhook_pb2.DELIVERY_STATUS_FAILED) == failed_ids
    assert (
        ids(status=webhook_pb2.DELIVERY_STATUS_SUCCEEDED) == {d.delivery_id for d in everything} - failed_ids
    )
    assert ids(status=webhook_pb2.DELIVERY_STATUS_HELD) == set()
    assert ids(event_type="webhook.test") == {q.delivery_id for q in tests}
    assert ids(event_type="session.status") == {d.delivery_id for d in session_events}
    assert ids(event_type="session.status", status=webhook_pb2.DELIVERY_STATUS_FAILED) == set()
    assert ids(event_type="message.received") == set()

    # Listings carry no attempts; GetDelivery does.
    assert all(len(d.attempts) == 0 for d in board.list(page_size=100).deliveries)

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = board.list(page_size=3, page_token=token)
        assert len(page.deliveries) <= 3
        seen.extend(d.delivery_id for d in page.deliveries)
        pages += 1
        token = page.next_page_token
        if not token:
            break
        assert pages < 20, "pagination does not end"
    assert len(seen) == len(set(seen)) == len(everything)
    assert set(seen) == {d.delivery_id for d in everything}
    assert seen == sorted(seen, reverse=True)  # newest first
    assert pages == -(-len(everything) // 3)

    # Filters and pages combine.
    first = board.list(page_size=1, event_type="webhook.test", status=webhook_pb2.DELIVERY_STATUS_SUCCEEDED)
    second = board.list(
        page_size=10,
        event_type="webhook.test",
        status=webhook_pb2.DELIVERY_STATUS_SUCCEEDED,
        page_token=first.next_page_token,
    )
    assert len(first.deliveries) == 1 and len(second.deliveries) == 4 and not second.next_page_token
    both = {d.delivery_id for d in (*first.deliveries, *second.deliveries)}
    assert both == {q.delivery_id for q in tests[:5]}


def test_another_agencys_delivery_is_not_found(live: LiveEngine, dashboard: Callable[..., Dashboard]) -> None:
    a = dashboard(live, "agency-a")
    b = dashboard(live, "agency-b")
    queued = a.send_test("a's")
    a.wait_status(queued.delivery_id, "SUCCEEDED")

    for auth in (b.auth, MASTER_AUTH):
        error = grpc_error(lambda auth=auth: b.get(queued.delivery_id, auth))
        assert error.code() is grpc.StatusCode.NOT_FOUND
        error = grpc_error(lambda auth=auth: b.redeliver(queued.delivery_id, auth))
        assert error.code() is grpc.StatusCode.NOT_FOUND
    assert queued.delivery_id not in {d.delivery_id for d in b.all_deliveries()}
    # B's key cannot name A either.
    request = webhook_pb2.GetDeliveryRequest(agency_id="agency-a", delivery_id=queued.delivery_id)
    error = grpc_error(lambda: b.webhooks.GetDelivery(request, metadata=b.auth))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    # Nothing was sent again, to anyone.
    assert a.receiver.stays_at(1, 0.3)
    assert b.receiver.requests == []
    assert a.get(queued.delivery_id).attempt_count == 1


def test_the_deliveries_api_over_rest_with_an_api_key(
    live: LiveEngine, dashboard: Callable[..., Dashboard]
) -> None:
    a = dashboard(live, "agency-a")
    b = dashboard(live, "agency-b")
    with httpx.Client(base_url=live.base_url, headers={"X-API-Key": a.api_key}, timeout=5) as http:
        sent = http.post("/api/v1/webhooks/test", json={"note": "over rest"})
        assert sent.status_code == 200, sent.text
        delivery = sent.json()["delivery"]
        assert delivery["agencyId"] == "agency-a" and delivery["eventType"] == "webhook.test"
        (request,) = a.receiver.wait_for_id(delivery["eventId"])
        assert verify(request, a.secret)["test"]["note"] == "over rest"
        a.wait_status(delivery["deliveryId"], "SUCCEEDED")

        listed = http.get(
            "/api/v1/webhooks/deliveries",
            params={"status": "DELIVERY_STATUS_SUCCEEDED", "eventType": "webhook.test", "pageSize": "10"},
        )
        assert listed.status_code == 200, listed.text
        assert [d["deliveryId"] for d in listed.json()["deliveries"]] == [delivery["deliveryId"]]
        none = http.get("/api/v1/webhooks/deliveries", params={"status": "DELIVERY_STATUS_FAILED"})
        assert none.status_code == 200 and none.json().get("deliveries", []) == []

        one = http.get(f"/api/v1/webhooks/deliveries/{delivery['deliveryId']}")
        assert one.status_code == 200, one.text
        body = one.json()["delivery"]
        assert body["status"] == "DELIVERY_STATUS_SUCCEEDED"
        assert [(x["attemptNumber"], x["responseStatus"]) for x in body["attempts"]] == [(1, 200)]
        assert body["event"]["id"] == delivery["eventId"]

        again = http.post(f"/api/v1/webhooks/deliveries/{delivery['deliveryId']}/redeliver", json={})
        assert again.status_code == 200, again.text
        requests = a.receiver.wait_for_id(delivery["eventId"], 2)
        assert requests[0].body == requests[1].body

        missing = http.get("/api/v1/webhooks/deliveries/dlv_01J00000000000000000000000")
        assert missing.status_code == 404

    b_key = {"X-API-Key": b.api_key}
    other = httpx.get(f"{live.base_url}/api/v1/webhooks/deliveries/{delivery['deliveryId']}", headers=b_key)
    assert other.status_code == 404
    other = httpx.post(
        f"{live.base_url}/api/v1/webhooks/deliveries/{delivery['deliveryId']}/redeliver",
        headers=b_key,
        json={},
    )
    assert other.status_code == 404
    anonymous = httpx.get(f"{live.base_url}/api/v1/webhooks/deliveries")
    assert anonymous.status_code == 401
    assert b.receiver.requests == []
