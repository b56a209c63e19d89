"""The Python client (`clients/python`, `workflow_engine_client`) against live engines.

Registration and the session lifecycle run on SQLite and PostgreSQL; everything else on
SQLite. Pagination is checked by counting the RPCs the iterators make (a counting client
interceptor on the channel), retries through `RetryConfig.on_retry` and an injected sleep.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from tests.support.constants import BACKENDS, MASTER_KEY, PSK, WEBHOOK_SECRET
from tests.support.live import LiveEngine
from tests.support.receiver import WebhookReceiver
from tests.support.waiting import eventually
from workflow_engine.v1 import common_pb2, webhook_pb2
from workflow_engine_client import (
    NO_RETRY,
    AlreadyExists,
    EngineClient,
    EngineError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Registration,
    RegistrationClient,
    RetryConfig,
    RetryEvent,
    Unauthenticated,
    Unavailable,
    verify_webhook,
    verify_webhook_ed25519,
)

#: Nothing listens here: deliveries of dashboards that do not care about webhooks fail at once.
NOWHERE = "http://127.0.0.1:9/hooks"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- helpers ------------------------------------------------------------------------------------


class CountingInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Counts the calls made through a channel, by method name (`ListSessions`, ...)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls[details.method.rsplit("/", 1)[-1]] += 1
        return continuation(details, request)


def counting_channel(live: LiveEngine) -> tuple[grpc.Channel, CountingInterceptor]:
    counter = CountingInterceptor()
    return grpc.intercept_channel(grpc.insecure_channel(live.target), counter), counter


def registration_client(live: LiveEngine, **options: Any) -> RegistrationClient:
    return RegistrationClient(live.target, PSK, **options)


def register(live: LiveEngine, agency_id: str, url: str = NOWHERE, secret: str = WEBHOOK_SECRET) -> str:
    """Register `agency_id`; return its API key."""
    with registration_client(live) as registry:
        return registry.register(agency_id, f"Dashboard {agency_id}", url, secret).api_key


def dashboard(live: LiveEngine, agency_id: str, url: str = NOWHERE, **options: Any) -> EngineClient:
    """Register `agency_id` and return a client with its new API key."""
    return EngineClient(live.target, register(live, agency_id, url), **options)


def status_name(value: int) -> str:
    return str(common_pb2.SessionStatus.Name(value)).removeprefix("SESSION_STATUS_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def sqlite_engine(start_engine: Callable[..., LiveEngine]) -> LiveEngine:
    return start_engine("sqlite")


@pytest.fixture(params=BACKENDS)
def any_engine(request: pytest.FixtureRequest, start_engine: Callable[..., LiveEngine]) -> LiveEngine:
    return start_engine(request.param)


# -- RegistrationClient -------------------------------------------------------------------------


def test_registration_client_every_method(any_engine: LiveEngine) -> None:
    channel, counter = counting_channel(any_engine)
    with RegistrationClient("unused:1", PSK, channel=channel) as registry:
        registration = registry.register(
            "agency-reg", "Reg Dashboard", "https://dash.example.com/hooks", WEBHOOK_SECRET
        )
        assert isinstance(registration, Registration)
        assert registration.agency_id == "agency-reg"
        assert registration.api_key.startswith("wfe_")
        assert registration.api_key not in repr(registration)

        config = registry.get_config("agency-reg")
        assert (config.agency_id, config.dashboard_name, config.dashboard_url) == (
            "agency-reg",
            "Reg Dashboard",
            "https://dash.example.com/hooks",
        )

        # Only what is given changes.
        renamed = registry.update_config("agency-reg", dashboard_name="Renamed")
        assert (renamed.dashboard_name, renamed.dashboard_url) == (
            "Renamed",
            "https://dash.example.com/hooks",
        )
        moved = registry.update_config(
            "agency-reg", dashboard_url="https://dash.example.com/v2", webhook_secret="x" * 40
        )
        assert (moved.dashboard_name, moved.dashboard_url) == ("Renamed", "https://dash.example.com/v2")
        assert registry.get_config("agency-reg").dashboard_url == "https://dash.example.com/v2"

        # Rotation: the new key works; with no grace period the old one stops at once.
        rotated = registry.rotate_api_key("agency-reg", grace_period_seconds=0)
        assert rotated.agency_id == "agency-reg"
        assert rotated.api_key.startswith("wfe_") and rotated.api_key != registration.api_key
        with EngineClient(any_engine.target, rotated.api_key) as fresh:
            assert list(fresh.list_sessions()) == []
        with (
            EngineClient(any_engine.target, registration.api_key, retry=NO_RETRY) as old,
            pytest.raises(Unauthenticated),
        ):
            list(old.list_sessions())
        # The default grace period keeps the previous key working.
        graced = registry.rotate_api_key("agency-reg")
        assert graced.previous_key_expire_time.seconds > time.time() + 3600
        with EngineClient(any_engine.target, rotated.api_key) as previous:
            assert list(previous.list_sessions()) == []
    assert counter.calls["RotateApiKey"] == 2


def test_list_agencies_iterates_lazily_over_pages(sqlite_engine: LiveEngine) -> None:
    channel, counter = counting_channel(sqlite_engine)
    with RegistrationClient("unused:1", PSK, channel=channel) as registry:
        names = [f"agency-{n}" for n in range(5)]
        for name in names:
            registry.register(name, name, NOWHERE, WEBHOOK_SECRET)

        agencies = registry.list_agencies(page_size=2)
        first = next(agencies)
        assert counter.calls["ListAgencies"] == 1  # nothing fetched before it is needed
        rest = list(agencies)
        assert sorted(a.agency_id for a in [first, *rest]) == names
        assert counter.calls["ListAgencies"] == 3  # 2 + 2 + 1

        assert sorted(a.agency_id for a in registry.list_agencies()) == names
        assert counter.calls["ListAgencies"] == 4  # one page of the default size


# -- EngineClient: sessions ---------------------------------------------------------------------


def test_session_lifecycle_every_method(any_engine: LiveEngine) -> None:
    with dashboard(any_engine, "agency-life") as client:
        created = client.create_session("tenant-1", name="Front desk", metadata={"branch": "north"})
        assert created.session_id.startswith("ses_")
        assert (created.agency_id, created.tenant_id, created.name) == (
            "agency-life",
            "tenant-1",
            "Front desk",
        )
        assert dict(created.metadata) == {"branch": "north"}
        assert created.provider == "sandbox"
        assert status_name(created.status) == "STOPPED"
        session_id = created.session_id

        assert client.get_session(session_id).session_id == session_id
        assert client.get_session(session_id, tenant_id="tenant-1").name == "Front desk"
        with pytest.raises(NotFound):
            client.get_session(session_id, tenant_id="tenant-2")

        started = client.start_session(session_id, tenant_id="tenant-1")
        assert started.session_id == session_id
        working = client.wait_for_status(session_id, "WORKING", timeout=8)
        assert status_name(working.status) == "WORKING" and working.account_id
        # The status filter takes enum numbers and names.
        assert [s.session_id for s in client.list_sessions(status=common_pb2.SESSION_STATUS_WORKING)] == [
            session_id
        ]
        assert [s.session_id for s in client.list_sessions("tenant-1", "working")] == [session_id]
        assert list(client.list_sessions("tenant-2")) == []
        assert list(client.list_sessions(status="STOPPED")) == []

        sent = client.send_message(session_id, "+1 555 000 2222", "Hello from the client")
        assert (
            sent.text == "Hello from the client" and sent.direction == common_pb2.MESSAGE_DIRECTION_OUTBOUND
        )
        received = client.simulate_inbound_message(session_id, "15550003333", "Hi! Open today?")
        assert received.text == "Hi! Open today?"
        assert received.direction == common_pb2.MESSAGE_DIRECTION_INBOUND
        assert getattr(received, "from").startswith("15550003333")

        conversations = list(client.list_conversations(session_id=session_id))
        assert len(conversations) == 2
        by_id = {c.conversation_id: c for c in conversations}
        assert received.conversation_id in by_id and sent.conversation_id in by_id
        assert [m.message_id for m in client.list_messages(received.conversation_id)] == [received.message_id]
        assert list(client.list_conversations(tenant_id="tenant-2")) == []

        assert status_name(client.stop_session(session_id).status) == "STOPPED"
        with pytest.raises(FailedPrecondition):
            client.send_message(session_id, "+1 555 000 2222", "not while stopped")
        logged_out = client.logout_session(session_id)
        assert logged_out.session_id == session_id
        deleted = client.delete_session(session_id)
        assert deleted.session_id == session_id
        with pytest.raises(NotFound):
            client.get_session(session_id)
        # History stays listable after the session is gone.
        assert len(list(client.list_messages(sent.conversation_id))) == 1


def test_master_key_acts_for_a_named_agency(sqlite_engine: LiveEngine) -> None:
    with dashboard(sqlite_engine, "agency-m") as own:
        session = own.create_session("t1")
    with EngineClient(sqlite_engine.target, MASTER_KEY, agency_id="agency-m") as master:
        assert [s.session_id for s in master.list_sessions()] == [session.session_id]
        assert master.get_session(session.session_id).agency_id == "agency-m"


def test_get_session_qr_and_wait_for_status_timeout(start_engine: Callable[..., LiveEngine]) -> None:
    live = start_engine("sqlite", sandbox_pairing_seconds=60.0)
    with dashboard(live, "agency-qr") as client:
        session = client.create_session("t1")
        with pytest.raises(FailedPrecondition):
            client.get_session_qr(session.session_id)  # only while SCAN_QR_CODE
        client.start_session(session.session_id)
        client.wait_for_status(session.session_id, common_pb2.SESSION_STATUS_SCAN_QR_CODE, timeout=8)
        value, png = client.get_session_qr(session.session_id)
        assert value and png.startswith(PNG_SIGNATURE)
        qr = client.get_session_qr(session.session_id, tenant_id="t1")
        assert qr.value == value

        began = time.monotonic()
        with pytest.raises(TimeoutError, match=r"SCAN_QR_CODE.*not WORKING"):
            client.wait_for_status(session.session_id, "WORKING", timeout=0.3, poll_interval=0.05)
        assert time.monotonic() - began < 3
        with pytest.raises(ValueError, match="unknown session status"):
            client.wait_for_status(session.session_id, "PAIRED", timeout=0.1)


def test_session_conversation_and_message_iterators_cross_pages(sqlite_engine: LiveEngine) -> None:
    channel, counter = counting_channel(sqlite_engine)
    with EngineClient("unused:1", register(sqlite_engine, "agency-pages"), channel=channel) as client:
        session_ids = [client.create_session("t1").session_id for _ in range(4)]
        client.create_session("t2")
        sessions = client.list_sessions("t1", page_size=3)
        assert counter.calls["ListSessions"] == 0  # an iterator fetches nothing before it is used
        assert sorted(s.session_id for s in sessions) == sorted(session_ids)
        assert counter.calls["ListSessions"] == 2
        assert len(list(client.list_sessions(page_size=1))) == 5
        assert counter.calls["ListSessions"] == 2 + 5

        working = session_ids[0]
        client.start_session(working)
        client.wait_for_status(working, "WORKING", timeout=8, poll_interval=0.02)
        peers = ["15550001001", "15550001002", "15550001003"]
        for peer in peers:
            client.simulate_inbound_message(working, peer, f"hello from {peer}")
        for n in range(2):
            client.simulate_inbound_message(working, peers[0], f"again {n}")
        before = counter.calls["ListConversations"]
        conversations = list(client.list_conversations(session_id=working, page_size=2))
        assert len(conversations) == 3
        assert counter.calls["ListConversations"] - before == 2
        busiest = next(c for c in conversations if c.peer.startswith(peers[0]))
        before = counter.calls["ListMessages"]
        texts = [m.text for m in client.list_messages(busiest.conversation_id, page_size=1)]
        assert texts == ["again 1", "again 0", f"hello from {peers[0]}"]  # newest first
        assert counter.calls["ListMessages"] - before == 3


# -- EngineClient: webhooks ---------------------------------------------------------------------


def test_deliveries_every_method(sqlite_engine: LiveEngine) -> None:
    with WebhookReceiver() as receiver, dashboard(sqlite_engine, "agency-dlv", url=receiver.url) as client:
        public_key = client.get_webhook_signing_key()
        assert public_key.startswith("whpk_")

        deliveries = [client.send_test_webhook(note=f"note {n}") for n in range(3)]
        assert all(d.delivery_id.startswith("dlv_") and d.event_type == "webhook.test" for d in deliveries)
        first = deliveries[0]
        assert first.event.test.note == "note 0"

        requests = receiver.wait_for(3)
        for request in requests:
            event = verify_webhook(WEBHOOK_SECRET, request.headers, request.body)
            assert verify_webhook_ed25519(public_key, request.headers, request.body) == event
        done = eventually(
            lambda: client.get_delivery(first.delivery_id),
            lambda d: d.status == webhook_pb2.DELIVERY_STATUS_SUCCEEDED,
            "the first delivery to succeed",
        )
        assert done.attempt_count == 1 and done.attempts[0].response_status == 200

        eventually(
            lambda: list(client.list_deliveries(status="SUCCEEDED")),
            lambda found: len(found) == 3,
            "three succeeded deliveries",
        )
        listed = list(client.list_deliveries(event_type="webhook.test", page_size=1))
        assert sorted(d.delivery_id for d in listed) == sorted(d.delivery_id for d in deliveries)
        assert list(client.list_deliveries(status=webhook_pb2.DELIVERY_STATUS_FAILED)) == []
        assert list(client.list_deliveries(event_type="message.received")) == []

        again = client.redeliver_webhook(first.delivery_id)
        assert again.event_id == first.event_id
        assert len(receiver.wait_for_id(first.event_id, count=2)) == 2

        with pytest.raises(NotFound):
            client.get_delivery("dlv_missing")


# -- retries ------------------------------------------------------------------------------------


def test_rate_limited_calls_are_retried_after_the_advertised_delay(
    start_engine: Callable[..., LiveEngine],
) -> None:
    live = start_engine("sqlite", rate_limit_rps=1.0, rate_limit_burst=1)
    retries: list[RetryEvent] = []
    with dashboard(live, "agency-rl", retry=RetryConfig(on_retry=retries.append)) as client:
        began = time.monotonic()
        results = [list(client.list_sessions()) for _ in range(3)]
        elapsed = time.monotonic() - began
    assert results == [[], [], []]  # every call succeeded in the end
    assert retries, "a burst of 1 at 1 request/s must have refused a back-to-back call"
    for event in retries:
        assert isinstance(event.error, RateLimited)
        assert event.method == "/workflow_engine.v1.SessionsService/ListSessions"
        # The engine advertises whole seconds (at least 1); the client waits exactly that.
        assert event.delay == event.error.retry_after and event.delay >= 1.0
        assert event.attempt < RetryConfig().max_attempts
    assert elapsed >= sum(event.delay for event in retries)


def test_rate_limited_error_without_retry_and_beyond_max_delay(
    start_engine: Callable[..., LiveEngine],
) -> None:
    live = start_engine("sqlite", rate_limit_rps=0.01, rate_limit_burst=1)
    retries: list[RetryEvent] = []
    with dashboard(live, "agency-rl2", retry=RetryConfig(on_retry=retries.append)) as client:
        list(client.list_sessions())
        # The bucket refills in 100 s: more than max_delay (10 s), so nothing is waited for.
        began = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            list(client.list_sessions())
        assert time.monotonic() - began < 5
    assert retries == []
    error = caught.value
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.retry_after is not None and 90 <= error.retry_after <= 100
    assert error.detail(error_details_pb2.QuotaFailure) is not None
    assert error.request_id and error.request_id.startswith("wfc_")
    assert isinstance(error, EngineError) and "RESOURCE_EXHAUSTED" in str(error)


def test_unavailable_is_retried_with_bounded_exponential_backoff() -> None:
    slept: list[float] = []
    retries: list[RetryEvent] = []
    config = RetryConfig(
        max_attempts=4,
        initial_backoff=0.01,
        backoff_multiplier=2.0,
        max_delay=0.03,
        jitter=0.0,
        on_retry=retries.append,
        sleep=slept.append,
    )
    target = f"127.0.0.1:{free_port()}"  # nothing listens
    with (
        EngineClient(target, "wfe_whatever", retry=config, timeout=5) as client,
        pytest.raises(Unavailable) as caught,
    ):
        client.get_session("ses_x")
    assert [event.attempt for event in retries] == [1, 2, 3]
    assert all(isinstance(event.error, Unavailable) for event in retries)
    assert slept == pytest.approx([0.01, 0.02, 0.03])  # doubling, capped at max_delay
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_unavailable_backoff_has_jitter_and_real_sleeps_are_short() -> None:
    retries: list[RetryEvent] = []
    config = RetryConfig(max_attempts=3, initial_backoff=0.05, jitter=0.5, on_retry=retries.append)
    with EngineClient(f"127.0.0.1:{free_port()}", "wfe_whatever", retry=config) as client:
        began = time.monotonic()
        with pytest.raises(Unavailable):
            list(client.list_sessions())
        elapsed = time.monotonic() - began
    assert len(retries) == 2
    assert 0.025 <= retries[0].delay <= 0.075 and 0.05 <= retries[1].delay <= 0.15
    assert elapsed >= retries[0].delay + retries[1].delay
    samples = {RetryConfig(jitter=0.5).backoff(1) for _ in range(20)}
    assert len(samples) > 1  # jittered


def test_unavailable_is_not_retried_for_calls_that_may_have_taken_effect() -> None:
    retries: list[RetryEvent] = []
    target = f"127.0.0.1:{free_port()}"
    quick = {"initial_backoff": 0.0, "on_retry": retries.append, "sleep": lambda _: None}
    with EngineClient(target, "wfe_whatever", retry=RetryConfig(**quick)) as client:
        with pytest.raises(Unavailable):
            client.send_message("ses_x", "+1 555", "hi")
        assert retries == []
    with (
        EngineClient(
            target, "wfe_whatever", retry=RetryConfig(max_attempts=2, retry_non_idempotent=True, **quick)
        ) as client,
        pytest.raises(Unavailable),
    ):
        client.send_message("ses_x", "+1 555", "hi")
    assert len(retries) == 1
    retry_three = RetryConfig(max_attempts=3, **quick)
    with RegistrationClient(target, PSK, retry=retry_three) as registry, pytest.raises(Unavailable):
        registry.get_config("agency")
    assert len(retries) == 3


def test_retry_config_is_validated() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryConfig(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryConfig(jitter=2)
    with pytest.raises(ValueError, match="multiplier"):
        RetryConfig(backoff_multiplier=0.5)


# -- error mapping ------------------------------------------------------------------------------


def test_each_status_maps_to_its_exception(sqlite_engine: LiveEngine) -> None:
    live = sqlite_engine
    with registration_client(live, retry=NO_RETRY) as registry:
        with pytest.raises(InvalidArgument) as invalid:
            registry.register("bad agency!", "", "not a url", "short")
        assert invalid.value.code is grpc.StatusCode.INVALID_ARGUMENT
        fields = {v.field for v in invalid.value.field_violations}
        assert {"agencyId", "dashboardUrl", "webhookSecret"} <= fields
        assert all(isinstance(v, FieldViolation) and v.description for v in invalid.value.field_violations)

        registration = registry.register("agency-e", "E", NOWHERE, WEBHOOK_SECRET)
        with pytest.raises(AlreadyExists) as exists:
            registry.register("agency-e", "E", NOWHERE, WEBHOOK_SECRET)
        assert exists.value.code is grpc.StatusCode.ALREADY_EXISTS

    with (
        RegistrationClient(live.target, "wrong-psk", retry=NO_RETRY) as wrong,
        pytest.raises(Unauthenticated) as unauthenticated,
    ):
        list(wrong.list_agencies())
    assert unauthenticated.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert unauthenticated.value.request_id and unauthenticated.value.request_id.startswith("wfc_")

    with (
        EngineClient(live.target, registration.api_key, agency_id="someone-else", retry=NO_RETRY) as other,
        pytest.raises(PermissionDenied) as denied,
    ):
        list(other.list_sessions())
    assert denied.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert denied.value.reason == "AGENCY_MISMATCH"

    with EngineClient(live.target, registration.api_key, retry=NO_RETRY) as client:
        with pytest.raises(NotFound) as missing:
            client.get_session("ses_missing")
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
        session = client.create_session("t1")
        with pytest.raises(FailedPrecondition) as precondition:
            client.stop_session(session.session_id)  # it never started
        assert precondition.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert "STOPPED" in precondition.value.message
        with pytest.raises(InvalidArgument) as bad_page:
            list(client.list_sessions(page_size=-1))
        assert [v.field for v in bad_page.value.field_violations] == ["pageSize"]
        with pytest.raises(ValueError, match="unknown delivery status"):
            list(client.list_deliveries(status="LOST"))

    for error in (invalid, exists, unauthenticated, denied, missing, precondition):
        assert isinstance(error.value, EngineError)
        assert error.value.message and error.value.code.name in str(error.value)
        assert error.value.request_id


def test_channels_passed_in_are_not_closed(sqlite_engine: LiveEngine) -> None:
    channel = grpc.insecure_channel(sqlite_engine.target)
    with RegistrationClient("unused:1", PSK, channel=channel) as registry:
        registry.register("agency-ch", "Ch", NOWHERE, WEBHOOK_SECRET)
    with RegistrationClient("unused:1", PSK, channel=channel) as registry:
        assert [a.agency_id for a in registry.list_agencies()] == ["agency-ch"]
    channel.close()
