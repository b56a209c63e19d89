"""AdminService over gRPC, on SQLite and PostgreSQL: every RPC, end to end against live engines.

Dashboards are registered with the PSK, sessions run on the sandbox provider (which pairs at
once here), and webhooks go to real receivers (`tests/support/receiver.py`). What the admin
reads (session counts, delivery figures, health counters) is produced through the public API,
never written into the database, except where a test needs time to have passed (a delivery
older than 24 hours) or the database to disappear (gRPC health).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api import httpbody_pb2
from google.protobuf import json_format, symbol_database, text_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import update
from standardwebhooks import Webhook

from engine import __version__
from engine.app import build_engine
from engine.config import SecretStr
from engine.sessions.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from engine.webhooks.models import WebhookDelivery
from tests.support.constants import BACKENDS, MASTER_KEY, WEBHOOK_SECRET
from tests.support.fake_waha import DEFAULT_API_KEY, FakeWaha
from tests.support.live import LiveEngine, base_settings
from tests.support.receiver import Received, Reply, WebhookReceiver
from tests.support.rpc import MASTER_AUTH, PSK_AUTH, Metadata, api_key_auth, detail_of, register
from tests.support.waiting import WAIT_SECONDS, eventually
from workflow_engine.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    registry_pb2,
    registry_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    webhook_pb2,
    webhook_pb2_grpc,
)

WAHA_SECRET = "waha-hmac-secret-0123456789abcdef"
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
ADMIN_METHODS = list(ADMIN_SERVICE.methods)

ACTIVE = common_pb2.DASHBOARD_STATUS_ACTIVE
SUSPENDED = common_pb2.DASHBOARD_STATUS_SUSPENDED
WEBHOOKS_DISABLED = common_pb2.DASHBOARD_STATUS_WEBHOOKS_DISABLED
WORKING = common_pb2.SESSION_STATUS_WORKING
SUCCEEDED = webhook_pb2.DELIVERY_STATUS_SUCCEEDED
FAILED = webhook_pb2.DELIVERY_STATUS_FAILED
PENDING = webhook_pb2.DELIVERY_STATUS_PENDING
HELD = webhook_pb2.DELIVERY_STATUS_HELD


# -- helpers ------------------------------------------------------------------------------------


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def bad_fields(error: grpc.RpcError) -> set[str]:
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    return {v.field for v in detail_of(error, error_details_pb2.BadRequest).field_violations}


def admin(live: LiveEngine) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(live.channel)


def detail(live: LiveEngine, agency_id: str) -> admin_pb2.DashboardDetail:
    request = admin_pb2.GetDashboardRequest(agency_id=agency_id)
    return admin(live).GetDashboard(request, metadata=MASTER_AUTH).dashboard


def summary(live: LiveEngine, agency_id: str) -> admin_pb2.DashboardSummary:
    return detail(live, agency_id).summary


def listed_summary(live: LiveEngine, agency_id: str) -> admin_pb2.DashboardSummary:
    """The dashboard as ListDashboards shows it."""
    response = admin(live).ListDashboards(
        admin_pb2.ListDashboardsRequest(query=agency_id, page_size=500), metadata=MASTER_AUTH
    )
    (found,) = [d for d in response.dashboards if d.agency_id == agency_id]
    return found


def suspend(live: LiveEngine, agency_id: str, reason: str = "") -> admin_pb2.DashboardDetail:
    request = admin_pb2.SuspendDashboardRequest(agency_id=agency_id, reason=reason)
    return admin(live).SuspendDashboard(request, metadata=MASTER_AUTH).dashboard


def activate(live: LiveEngine, agency_id: str) -> admin_pb2.DashboardDetail:
    request = admin_pb2.ActivateDashboardRequest(agency_id=agency_id)
    return admin(live).ActivateDashboard(request, metadata=MASTER_AUTH).dashboard


def health(live: LiveEngine) -> admin_pb2.GetSystemHealthResponse:
    return admin(live).GetSystemHealth(admin_pb2.GetSystemHealthRequest(), metadata=MASTER_AUTH)


def all_deliveries(live: LiveEngine, **fields: Any) -> list[webhook_pb2.Delivery]:
    """Every delivery ListAllDeliveries returns for these filters, following page tokens."""
    found: list[webhook_pb2.Delivery] = []
    token = ""
    for _ in range(100):
        page = admin(live).ListAllDeliveries(
            admin_pb2.ListAllDeliveriesRequest(page_size=500, page_token=token, **fields),
            metadata=MASTER_AUTH,
        )
        found.extend(page.deliveries)
        token = page.next_page_token
        if not token:
            return found
    pytest.fail("ListAllDeliveries pagination does not end")


def to_datetime(value: Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def counts(value: admin_pb2.SessionCounts | admin_pb2.DeliveryCounts) -> dict[str, int]:
    return {field.name: getattr(value, field.name) for field in value.DESCRIPTOR.fields}


def sessions_of(counts_message: admin_pb2.SessionCounts, **expected: int) -> dict[str, int]:
    return {**dict.fromkeys(counts(counts_message), 0), **expected}


def signed_sandbox_webhook(live: LiveEngine, session: str) -> tuple[Message, Metadata]:
    """A sandbox provider webhook (validly signed) about a session the engine may not know."""
    body = (
        f'{{"id":"evt_{uuid.uuid4().hex}","event":"session.status","session":"{session}",'
        '"payload":{"status":"WORKING"}}'
    ).encode()
    sandbox = live.engine.providers["sandbox"]
    assert isinstance(sandbox, SandboxProvider)
    request = webhook_pb2.ReceiveProviderWebhookRequest(
        provider="sandbox", body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
    )
    return request, ((SIGNATURE_HEADER, sandbox.sign(body)),)


def verify(request: Received) -> Any:
    """Check the request's `v1` signature with the Standard Webhooks reference verifier."""
    return Webhook(WEBHOOK_SECRET.encode("utf-8")).verify(request.body, request.headers)


@dataclass
class Board:
    """A registered dashboard: its API key and (optionally) the receiver its webhooks go to."""

    live: LiveEngine
    agency_id: str
    api_key: str
    receiver: WebhookReceiver | None

    @property
    def auth(self) -> Metadata:
        return api_key_auth(self.api_key)

    @property
    def sessions(self) -> sessions_pb2_grpc.SessionsServiceStub:
        return sessions_pb2_grpc.SessionsServiceStub(self.live.channel)

    @property
    def webhooks(self) -> webhook_pb2_grpc.WebhookServiceStub:
        return webhook_pb2_grpc.WebhookServiceStub(self.live.channel)

    def create_session(self, tenant_id: str = "t1", **fields: Any) -> common_pb2.Session:
        request = sessions_pb2.CreateSessionRequest(tenant_id=tenant_id, name=f"Desk {tenant_id}", **fields)
        return self.sessions.CreateSession(request, metadata=self.auth).session

    def get_session(self, session_id: str) -> common_pb2.Session:
        request = sessions_pb2.GetSessionRequest(agency_id=self.agency_id, session_id=session_id)
        return self.sessions.GetSession(request, metadata=MASTER_AUTH).session

    def working_session(self, tenant_id: str = "t1") -> common_pb2.Session:
        """A session started and paired (the sandbox pairs at once)."""
        session = self.create_session(tenant_id)
        self.sessions.StartSession(
            sessions_pb2.StartSessionRequest(session_id=session.session_id), metadata=self.auth
        )
        return eventually(
            lambda: self.get_session(session.session_id), lambda s: s.status == WORKING, "a WORKING session"
        )

    def send_test(self, note: str = "", auth: Metadata | None = None) -> webhook_pb2.Delivery:
        request = webhook_pb2.SendTestWebhookRequest(agency_id=self.agency_id, note=note)
        return self.webhooks.SendTestWebhook(request, metadata=auth or self.auth).delivery

    def start_test(self, note: str) -> grpc.Future:
        """SendTestWebhook without waiting for its answer. A future, not a thread: a call still
        open when the test closes the channel is cancelled quietly, not raised in a later test."""
        request = webhook_pb2.SendTestWebhookRequest(agency_id=self.agency_id, note=note)
        return self.webhooks.SendTestWebhook.future(request, metadata=self.auth)

    def delivery(self, delivery_id: str) -> webhook_pb2.Delivery:
        request = webhook_pb2.GetDeliveryRequest(agency_id=self.agency_id, delivery_id=delivery_id)
        return self.webhooks.GetDelivery(request, metadata=MASTER_AUTH).delivery

    def wait_delivery(
        self, delivery_id: str, status: int, timeout: float = WAIT_SECONDS
    ) -> webhook_pb2.Delivery:
        return eventually(
            lambda: self.delivery(delivery_id),
            lambda d: d.status == status,
            f"delivery {delivery_id} to be {webhook_pb2.DeliveryStatus.Name(status)}",
            timeout,
        )

    def wait_settled(self) -> list[webhook_pb2.Delivery]:
        """Wait until none of the dashboard's deliveries is PENDING; return them all."""
        return eventually(
            lambda: all_deliveries(self.live, agency_id=self.agency_id),
            lambda found: all(d.status != PENDING for d in found),
            f"{self.agency_id}'s deliveries to settle",
        )


@pytest.fixture
def dashboard() -> Iterator[Callable[..., Board]]:
    """Factory: register a dashboard, by default with its own receiver (closed at teardown)."""
    receivers: list[WebhookReceiver] = []

    def make(live: LiveEngine, agency_id: str, *, with_receiver: bool = True, **fields: str) -> Board:
        receiver = None
        if with_receiver:
            receiver = WebhookReceiver()
            receivers.append(receiver)
            fields.setdefault("dashboard_url", receiver.url)
        api_key = register(live.channel, agency_id, **fields).api_key
        return Board(live, agency_id, api_key, receiver)

    yield make
    for receiver in receivers:
        receiver.close()


def call(live: LiveEngine, method: MethodDescriptor, metadata: Metadata, agency_id: str) -> grpc.StatusCode:
    """Call an AdminService method with a minimal request naming `agency_id`; return the status code."""
    request_class = symbol_database.Default().GetSymbol(method.input_type.full_name)
    request = request_class()
    if "agency_id" in method.input_type.fields_by_name:
        request.agency_id = agency_id
    multicallable = live.channel.unary_unary(
        f"/{ADMIN_SERVICE.full_name}/{method.name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=lambda raw: raw,
    )
    try:
        multicallable(request, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


# -- the master-key-only rule -------------------------------------------------------------------


def test_every_admin_rpc_is_for_the_master_key_only(
    live: LiveEngine, dashboard: Callable[..., Board]
) -> None:
    assert {m.name for m in ADMIN_METHODS} == {
        "ListDashboards",
        "GetDashboard",
        "ListDashboardSessions",
        "SuspendDashboard",
        "ActivateDashboard",
        "GetSystemHealth",
        "ListAllSessions",
        "SetDashboardRateLimit",
        "ListAllDeliveries",
        "RecoverFailedDeliveries",
    }
    board = dashboard(live, "agency-a", with_receiver=False)
    for method in ADMIN_METHODS:
        # Even for its own agency, a dashboard key may not call the admin service.
        assert call(live, method, board.auth, "agency-a") is grpc.StatusCode.PERMISSION_DENIED, method.name
        assert call(live, method, PSK_AUTH, "agency-a") is grpc.StatusCode.PERMISSION_DENIED, method.name
        assert call(live, method, (), "agency-a") is grpc.StatusCode.UNAUTHENTICATED, method.name
    # None of the refused calls did anything.
    refused = detail(live, "agency-a")
    assert refused.summary.status == ACTIVE
    assert list(refused.status_history) == []

    error = rpc_error(
        lambda: admin(live).ListDashboards(admin_pb2.ListDashboardsRequest(), metadata=board.auth)
    )
    assert detail_of(error, error_details_pb2.ErrorInfo).reason == "CREDENTIAL_NOT_ALLOWED"
    # The master key passes the guard on every method (by x-api-key and as a bearer token).
    bearer = (("authorization", f"Bearer {MASTER_KEY}"),)
    for method in ADMIN_METHODS:
        if method.name in ("SuspendDashboard", "ActivateDashboard"):
            continue  # they act; tested below
        assert call(live, method, MASTER_AUTH, "agency-a") is grpc.StatusCode.OK, method.name
        assert call(live, method, bearer, "agency-a") is grpc.StatusCode.OK, method.name


AGENCY_SCOPED = (
    "GetDashboard",
    "ListDashboardSessions",
    "SuspendDashboard",
    "ActivateDashboard",
    "SetDashboardRateLimit",
    "RecoverFailedDeliveries",
)


def test_agency_scoped_admin_rpcs_require_an_agency_id(live: LiveEngine) -> None:
    wrong: dict[str, str] = {}
    for method in ADMIN_METHODS:
        if method.name not in AGENCY_SCOPED:
            continue
        request_class = symbol_database.Default().GetSymbol(method.input_type.full_name)
        multicallable = live.channel.unary_unary(
            f"/{ADMIN_SERVICE.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=lambda raw: raw,
        )
        try:
            multicallable(request_class(), metadata=MASTER_AUTH, timeout=10)
            wrong[method.name] = "OK"
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.INVALID_ARGUMENT or bad_fields(error) != {"agencyId"}:
                wrong[method.name] = f"{error.code().name}: {error.details()}"
    assert wrong == {}


def test_an_unknown_status_filter_is_invalid_argument(live: LiveEngine) -> None:
    register(live.channel, "agency-a")
    stub = admin(live)
    calls: dict[str, Callable[[], Any]] = {
        "ListAllSessions": lambda: stub.ListAllSessions(
            admin_pb2.ListAllSessionsRequest(status=42), metadata=MASTER_AUTH
        ),
        "ListDashboardSessions": lambda: stub.ListDashboardSessions(
            admin_pb2.ListDashboardSessionsRequest(agency_id="agency-a", status=42), metadata=MASTER_AUTH
        ),
        "ListAllDeliveries": lambda: stub.ListAllDeliveries(
            admin_pb2.ListAllDeliveriesRequest(status=42), metadata=MASTER_AUTH
        ),
        "ListDashboards": lambda: stub.ListDashboards(
            admin_pb2.ListDashboardsRequest(status=42), metadata=MASTER_AUTH
        ),
    }
    # Proto3 enums are open: a client may send a number the contract does not define.
    outcomes: dict[str, Any] = {}
    for name, attempt in calls.items():
        try:
            attempt()
            outcomes[name] = "OK"
        except grpc.RpcError as error:
            outcomes[name] = (error.code(), error.details())
            if error.code() is grpc.StatusCode.INVALID_ARGUMENT:
                outcomes[name] = bad_fields(error)
    assert outcomes == {name: {"status"} for name in calls}


# -- ListDashboards ------------------------------------------------------------------------------

SEARCHABLE = {
    "acme-corp": ("Acme Corporation", "https://acme.example.com/hooks"),
    "globex": ("Globex Portal", "https://globex.example.org/hooks"),
    "ini-1": ("Office Space", "https://hooks.example.net/Initech/Events"),
    "growth-co": ("100% Growth", "https://growth.example.com/hooks"),
    "under_score": ("Underscored", "https://under.example.com/hooks"),
    "tiger": ("Tiger Systems", "https://tiger.example.com/hooks"),
}


def listed_ids(live: LiveEngine, **fields: Any) -> list[str]:
    response = admin(live).ListDashboards(
        admin_pb2.ListDashboardsRequest(page_size=100, **fields), metadata=MASTER_AUTH
    )
    assert response.next_page_token == ""
    return [d.agency_id for d in response.dashboards]


def test_list_dashboards_searches_name_agency_and_url_case_insensitively(
    live: LiveEngine, dashboard: Callable[..., Board]
) -> None:
    for agency_id, (name, url) in SEARCHABLE.items():
        dashboard(live, agency_id, with_receiver=False, dashboard_name=name, dashboard_url=url)

    assert listed_ids(live) == sorted(SEARCHABLE)
    assert listed_ids(live, query="ACME") == ["acme-corp"]
    assert listed_ids(live, query="globex PORTAL") == ["globex"]  # the name only
    assert listed_ids(live, query="INITECH/events") == ["ini-1"]  # the URL only
    assert listed_ids(live, query="CORP") == ["acme-corp"]  # agencyId and name
    assert listed_ids(live, query="example.com") == ["acme-corp", "growth-co", "tiger", "under_score"]
    assert listed_ids(live, query="no such dashboard") == []

    # LIKE's wildcards are taken literally.
    assert listed_ids(live, query="%") == ["growth-co"]
    assert listed_ids(live, query="1%0") == []  # as a pattern, it would match "100% Growth"
    assert listed_ids(live, query="_") == ["under_score"]
    assert listed_ids(live, query="r_s") == ["under_score"]  # as a pattern, also "Tiger Systems"
    assert listed_ids(live, query="/") == sorted(SEARCHABLE)

    listed = admin(live).ListDashboards(admin_pb2.ListDashboardsRequest(query="ini-1"), metadata=MASTER_AUTH)
    (office,) = listed.dashboards
    assert office.dashboard_name == "Office Space"
    assert office.dashboard_url == "https://hooks.example.net/Initech/Events"
    assert office.status == ACTIVE
    assert abs(to_datetime(office.create_time) - datetime.now(UTC)) < timedelta(minutes=1)
    assert not office.HasField("last_successful_delivery_time")


def test_list_dashboards_filters_by_status(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    for agency_id, (name, url) in SEARCHABLE.items():
        dashboard(live, agency_id, with_receiver=False, dashboard_name=name, dashboard_url=url)
    suspend(live, "tiger", "unpaid")
    suspend(live, "globex", "abuse")

    assert listed_ids(live, status=SUSPENDED) == ["globex", "tiger"]
    assert listed_ids(live, status=ACTIVE) == ["acme-corp", "growth-co", "ini-1", "under_score"]
    assert listed_ids(live, status=WEBHOOKS_DISABLED) == []
    assert listed_ids(live, status=SUSPENDED, query="TIGER") == ["tiger"]
    assert listed_ids(live, status=SUSPENDED, query="acme") == []
    assert listed_ids(live, status=ACTIVE, query="r_s") == ["under_score"]
    statuses = {
        d.agency_id: d.status
        for d in admin(live)
        .ListDashboards(admin_pb2.ListDashboardsRequest(), metadata=MASTER_AUTH)
        .dashboards
    }
    assert statuses == {**dict.fromkeys(SEARCHABLE, ACTIVE), "tiger": SUSPENDED, "globex": SUSPENDED}

    activate(live, "tiger")
    assert listed_ids(live, status=SUSPENDED) == ["globex"]


def test_list_dashboards_search_is_case_insensitive_beyond_ascii(
    live: LiveEngine, dashboard: Callable[..., Board]
) -> None:
    dashboard(live, "praxis", with_receiver=False, dashboard_name="Ärztehaus Zürich")
    dashboard(live, "other", with_receiver=False, dashboard_name="Other")
    assert listed_ids(live, query="Ärztehaus") == ["praxis"]


def test_list_dashboards_paginates_without_gaps_or_duplicates(
    live: LiveEngine, dashboard: Callable[..., Board]
) -> None:
    agencies = [f"p-{n:02d}" for n in range(1, 8)] + ["q-01", "q-02"]
    for agency_id in reversed(agencies):
        dashboard(live, agency_id, with_receiver=False)

    def pages(page_size: int, **fields: Any) -> list[list[str]]:
        found: list[list[str]] = []
        token = ""
        while True:
            page = admin(live).ListDashboards(
                admin_pb2.ListDashboardsRequest(page_size=page_size, page_token=token, **fields),
                metadata=MASTER_AUTH,
            )
            found.append([d.agency_id for d in page.dashboards])
            token = page.next_page_token
            if not token:
                return found
            assert len(found) < 20, "pagination does not end"

    assert pages(3) == [agencies[0:3], agencies[3:6], agencies[6:9]]
    assert pages(2, query="P-0") == [agencies[0:2], agencies[2:4], agencies[4:6], agencies[6:7]]
    assert pages(4, query="q-") == [["q-01", "q-02"]]
    assert [len(page) for page in pages(1)] == [1] * 9
    assert pages(0) == [agencies]  # the default page size holds them all

    for bad in (
        admin_pb2.ListDashboardsRequest(page_token="not-a-token!"),
        admin_pb2.ListDashboardsRequest(page_size=-1),
    ):
        error = rpc_error(lambda bad=bad: admin(live).ListDashboards(bad, metadata=MASTER_AUTH))
        assert bad_fields(error) & {"pageToken", "pageSize"}


# -- per-dashboard figures ------------------------------------------------------------------------


def test_session_counts_by_status(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    board = dashboard(live, "agency-a", with_receiver=False)
    other = dashboard(live, "agency-b", with_receiver=False)
    assert counts(summary(live, "agency-a").session_counts) == sessions_of(admin_pb2.SessionCounts())

    stopped = [board.create_session("t1"), board.create_session("t2"), board.create_session("t2")]
    working = board.working_session("t1")
    other.working_session("t9")
    expected = sessions_of(admin_pb2.SessionCounts(), stopped=3, working=1)
    assert counts(summary(live, "agency-a").session_counts) == expected
    assert counts(listed_summary(live, "agency-a").session_counts) == expected
    assert counts(listed_summary(live, "agency-b").session_counts) == sessions_of(
        admin_pb2.SessionCounts(), working=1
    )

    # Deleted sessions are not counted; a stopped session counts as stopped.
    board.sessions.DeleteSession(
        sessions_pb2.DeleteSessionRequest(session_id=stopped[0].session_id), metadata=board.auth
    )
    board.sessions.StopSession(
        sessions_pb2.StopSessionRequest(session_id=working.session_id), metadata=board.auth
    )
    expected = sessions_of(admin_pb2.SessionCounts(), stopped=3)
    assert counts(summary(live, "agency-a").session_counts) == expected
    assert counts(listed_summary(live, "agency-a").session_counts) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_delivery_figures_of_the_last_24_hours(
    backend: str, start_engine: Callable[..., LiveEngine], dashboard: Callable[..., Board]
) -> None:
    # One attempt per delivery, and long enough a timeout to keep a slow delivery PENDING.
    live = start_engine(backend, webhook_retry_schedule=(), webhook_timeout_seconds=20.0)
    board = dashboard(live, "agency-a")
    held_board = dashboard(live, "agency-b")
    assert board.receiver is not None and held_board.receiver is not None
    answers = {"ok": Reply(200), "fail": Reply(500), "slow": Reply(200, delay=30)}
    board.receiver.respond_with(lambda request: answers[request.json["test"]["note"]])
    before = datetime.now(UTC)

    ok = [board.send_test("ok"), board.send_test("ok")]
    failed = board.send_test("fail")
    done = [board.wait_delivery(d.delivery_id, SUCCEEDED) for d in ok]
    board.wait_delivery(failed.delivery_id, FAILED)
    # SendTestWebhook waits for its attempt: the slow one stays PENDING (leased) while it runs.
    slow = board.start_test("slow")
    board.receiver.wait_until(
        lambda got: any(r.json.get("test", {}).get("note") == "slow" for r in got), what="the slow one"
    )
    suspend(live, "agency-b")
    held = held_board.send_test("held", auth=MASTER_AUTH)
    held_board.wait_delivery(held.delivery_id, HELD)

    figures = summary(live, "agency-a")
    expected = {"succeeded": 2, "failed": 1, "pending": 1, "held": 0}
    assert counts(figures.deliveries_24h) == expected
    assert counts(listed_summary(live, "agency-a").deliveries_24h) == expected
    assert counts(summary(live, "agency-b").deliveries_24h) == {
        "succeeded": 0,
        "failed": 0,
        "pending": 0,
        "held": 1,
    }
    last = to_datetime(figures.last_successful_delivery_time)
    assert before <= last <= datetime.now(UTC)
    assert last == max(to_datetime(d.last_attempt_time) for d in done)
    assert (
        listed_summary(live, "agency-a").last_successful_delivery_time
        == figures.last_successful_delivery_time
    )
    assert not summary(live, "agency-b").HasField("last_successful_delivery_time")

    # A delivery made more than 24 hours ago is no longer counted.
    with live.engine.database.transaction() as tx:
        tx.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.delivery_id == ok[0].delivery_id)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    assert counts(summary(live, "agency-a").deliveries_24h) == {**expected, "succeeded": 1}
    assert not slow.done(), "the slow delivery's attempt ended while it was counted as pending"
    slow.cancel()


# -- GetDashboard ----------------------------------------------------------------------------------


def assert_nowhere(response: Message, *secrets: str) -> None:
    """None of `secrets` appears in the response, in any of its serializations."""
    forms = [
        response.SerializeToString(),
        text_format.MessageToString(response).encode(),
        json_format.MessageToJson(response, preserving_proto_field_name=True).encode(),
        json_format.MessageToJson(response).encode(),
    ]
    for secret in secrets:
        for form in forms:
            assert secret.encode() not in form


def test_get_dashboard_shows_key_prefixes_and_never_a_secret(
    live: LiveEngine, dashboard: Callable[..., Board]
) -> None:
    board = dashboard(live, "agency-a", dashboard_name="Acme")
    first_key = board.api_key
    response = admin(live).GetDashboard(
        admin_pb2.GetDashboardRequest(agency_id="agency-a"), metadata=MASTER_AUTH
    )
    shown = response.dashboard
    assert shown.summary.agency_id == "agency-a"
    assert shown.summary.dashboard_name == "Acme"
    assert shown.config.agency_id == "agency-a"
    assert shown.config.webhook_secret_set
    assert shown.config.webhook_secret_hint == WEBHOOK_SECRET[-4:]
    (key,) = shown.api_keys
    assert key.prefix and first_key.startswith(key.prefix) and len(key.prefix) < len(first_key) // 2
    assert abs(to_datetime(key.create_time) - datetime.now(UTC)) < timedelta(minutes=1)
    assert not key.HasField("expire_time")
    assert_nowhere(response, first_key, WEBHOOK_SECRET)

    rotated = registry_pb2_grpc.RegistryServiceStub(live.channel).RotateApiKey(
        registry_pb2.RotateApiKeyRequest(grace_period_seconds=3600), metadata=board.auth
    )
    response = admin(live).GetDashboard(
        admin_pb2.GetDashboardRequest(agency_id="agency-a"), metadata=MASTER_AUTH
    )
    old, new = response.dashboard.api_keys
    assert first_key.startswith(old.prefix)
    assert rotated.api_key.startswith(new.prefix)
    assert old.prefix != new.prefix
    assert old.expire_time == rotated.previous_key_expire_time
    assert to_datetime(old.expire_time) - to_datetime(new.create_time) == timedelta(hours=1)
    assert old.create_time.ToDatetime() <= new.create_time.ToDatetime()
    assert not new.HasField("expire_time")
    assert_nowhere(response, first_key, rotated.api_key, WEBHOOK_SECRET)

    error = rpc_error(
        lambda: admin(live).GetDashboard(
            admin_pb2.GetDashboardRequest(agency_id="nobody"), metadata=MASTER_AUTH
        )
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_set_dashboard_rate_limit_is_shown_and_enforced(
    live: LiveEngine, dashboard: Callable[..., Board]
) -> None:
    board = dashboard(live, "agency-a", with_receiver=False)
    dashboard(live, "agency-b", with_receiver=False)
    settings = live.engine.settings
    default = common_pb2.RateLimit(
        requests_per_second=settings.rate_limit_rps, burst=settings.rate_limit_burst
    )
    assert detail(live, "agency-a").rate_limit == default

    registry = registry_pb2_grpc.RegistryServiceStub(live.channel)

    def config_call() -> grpc.StatusCode:
        try:
            registry.GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=board.auth)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    assert config_call() is grpc.StatusCode.OK  # its bucket exists, with the default limits
    limit = common_pb2.RateLimit(requests_per_second=0.5, burst=2)
    response = admin(live).SetDashboardRateLimit(
        admin_pb2.SetDashboardRateLimitRequest(agency_id="agency-a", rate_limit=limit), metadata=MASTER_AUTH
    )
    assert response.dashboard.rate_limit == limit
    assert response.dashboard.config.rate_limit == limit
    assert detail(live, "agency-a").rate_limit == limit
    assert detail(live, "agency-b").rate_limit == default

    assert [config_call() for _ in range(3)] == [
        grpc.StatusCode.OK,
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]
    # Another dashboard's key is not affected.
    other = dashboard(live, "agency-c", with_receiver=False)
    for _ in range(5):
        registry.GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=other.auth)

    # Zeros restore the engine's defaults.
    cleared = admin(live).SetDashboardRateLimit(
        admin_pb2.SetDashboardRateLimitRequest(agency_id="agency-a", rate_limit=common_pb2.RateLimit()),
        metadata=MASTER_AUTH,
    )
    assert cleared.dashboard.rate_limit == default
    eventually(config_call, lambda code: code is grpc.StatusCode.OK, "the default limit again")
    assert [config_call() for _ in range(5)] == [grpc.StatusCode.OK] * 5

    def set_limit(rps: float, burst: int, agency_id: str = "agency-a") -> Any:
        request = admin_pb2.SetDashboardRateLimitRequest(
            agency_id=agency_id, rate_limit=common_pb2.RateLimit(requests_per_second=rps, burst=burst)
        )
        return admin(live).SetDashboardRateLimit(request, metadata=MASTER_AUTH)

    assert bad_fields(rpc_error(lambda: set_limit(-1, 2))) == {"rateLimit.requestsPerSecond"}
    assert bad_fields(rpc_error(lambda: set_limit(1, -2))) == {"rateLimit.burst"}
    assert bad_fields(rpc_error(lambda: set_limit(1e9, 2_000_000))) == {
        "rateLimit.requestsPerSecond",
        "rateLimit.burst",
    }
    assert rpc_error(lambda: set_limit(1, 1, "nobody")).code() is grpc.StatusCode.NOT_FOUND
    assert detail(live, "agency-a").rate_limit == default


# -- suspension and activation ---------------------------------------------------------------------


def test_suspend_and_activate_are_recorded(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    dashboard(live, "agency-a", with_receiver=False)
    before = datetime.now(UTC)
    suspended = suspend(live, "agency-a", "unpaid invoice")
    after = datetime.now(UTC)
    assert suspended.summary.status == SUSPENDED
    assert suspended.config.status == SUSPENDED
    (change,) = suspended.status_history
    assert (change.status, change.actor, change.reason) == (SUSPENDED, "admin", "unpaid invoice")
    assert before <= to_datetime(change.change_time) <= after

    error = rpc_error(lambda: suspend(live, "agency-a", "again"))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert len(detail(live, "agency-a").status_history) == 1

    activated = activate(live, "agency-a")
    assert activated.summary.status == ACTIVE
    newest, oldest = activated.status_history
    assert (newest.status, newest.actor, newest.reason) == (ACTIVE, "admin", "")
    assert oldest == change
    assert to_datetime(newest.change_time) >= to_datetime(change.change_time)
    assert detail(live, "agency-a").status_history == activated.status_history

    assert rpc_error(lambda: activate(live, "agency-a")).code() is grpc.StatusCode.FAILED_PRECONDITION
    assert rpc_error(lambda: suspend(live, "nobody")).code() is grpc.StatusCode.NOT_FOUND
    assert rpc_error(lambda: activate(live, "nobody")).code() is grpc.StatusCode.NOT_FOUND
    assert bad_fields(rpc_error(lambda: suspend(live, "agency-a", "x" * 501))) == {"reason"}
    assert bad_fields(rpc_error(lambda: suspend(live, ""))) == {"agencyId"}
    assert detail(live, "agency-a").summary.status == ACTIVE

    # Without a reason is fine too.
    assert suspend(live, "agency-a").status_history[0].reason == ""


def test_suspension_end_to_end(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    board = dashboard(live, "agency-a")
    bystander = dashboard(live, "agency-b")
    assert board.receiver is not None and bystander.receiver is not None
    session = board.working_session("t1")
    settled = board.wait_settled()
    assert settled and all(d.status == SUCCEEDED for d in settled)
    seen = len(board.receiver.requests)
    assert seen == len(settled)

    suspend(live, "agency-a", "chargeback")
    # The dashboard's key is refused on its very next call.
    error = rpc_error(
        lambda: board.sessions.ListSessions(
            sessions_pb2.ListSessionsRequest(tenant_id="t1"), metadata=board.auth
        )
    )
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert detail_of(error, error_details_pb2.ErrorInfo).reason == "DASHBOARD_SUSPENDED"
    # The master key still acts for the agency; what it causes is held.
    inbound = board.sessions.SimulateInboundMessage(
        sessions_pb2.SimulateInboundMessageRequest(
            agency_id="agency-a",
            tenant_id="t1",
            session_id=session.session_id,
            **{"from": "15550002222"},
            text="Hi!",
        ),
        metadata=MASTER_AUTH,
    ).message
    test = board.send_test("while suspended", auth=MASTER_AUTH)
    held = eventually(
        lambda: all_deliveries(live, agency_id="agency-a", status=HELD),
        lambda found: len(found) == 2,
        "two HELD deliveries",
    )
    assert {d.event_type for d in held} == {"message.received", "webhook.test"}
    assert test.delivery_id in {d.delivery_id for d in held}
    assert board.receiver.stays_at(seen, 0.6), "a suspended dashboard got a webhook"
    assert summary(live, "agency-a").deliveries_24h.held == 2
    assert health(live).outbox.held == 2
    # Other dashboards are served as usual meanwhile.
    bystander.wait_delivery(bystander.send_test("meanwhile").delivery_id, SUCCEEDED)

    activated = activate(live, "agency-a")
    assert activated.summary.status == ACTIVE
    arrived = board.receiver.wait_for(seen + 2)[seen:]
    bodies = [verify(request) for request in arrived]
    assert sorted(body["type"] for body in bodies) == ["message.received", "webhook.test"]
    assert {request.webhook_id for request in arrived} == {d.event_id for d in held}
    (received,) = [body for body in bodies if body["type"] == "message.received"]
    assert received["agencyId"] == "agency-a"
    assert received["messageReceived"]["message"]["messageId"] == inbound.message_id
    for delivery in held:
        board.wait_delivery(delivery.delivery_id, SUCCEEDED)
    assert board.receiver.stays_at(seen + 2, 0.3)
    # And the key works again.
    board.sessions.ListSessions(sessions_pb2.ListSessionsRequest(tenant_id="t1"), metadata=board.auth)


def test_activation_re_enables_disabled_webhooks(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    board = dashboard(live, "agency-a")
    assert board.receiver is not None
    board.receiver.respond(410)
    gone = board.send_test("gone")
    board.wait_delivery(gone.delivery_id, HELD)
    disabled = eventually(
        lambda: detail(live, "agency-a"), lambda d: d.summary.status == WEBHOOKS_DISABLED, "webhooks disabled"
    )
    change = disabled.status_history[0]
    assert (change.status, change.actor) == (WEBHOOKS_DISABLED, "engine")
    assert "410" in change.reason
    assert listed_ids(live, status=WEBHOOKS_DISABLED) == ["agency-a"]

    board.receiver.respond(200)
    later = board.send_test("later")  # the API is still served while webhooks are disabled
    board.wait_delivery(later.delivery_id, HELD)
    assert board.receiver.stays_at(1, 0.5)

    # A dashboard whose webhooks are disabled can be suspended too; activation clears both.
    assert suspend(live, "agency-a", "investigating").summary.status == SUSPENDED
    activated = activate(live, "agency-a")
    assert activated.summary.status == ACTIVE
    assert [c.status for c in activated.status_history] == [ACTIVE, SUSPENDED, WEBHOOKS_DISABLED]
    board.wait_delivery(gone.delivery_id, SUCCEEDED)
    board.wait_delivery(later.delivery_id, SUCCEEDED)
    assert board.receiver.count_by_id() == {gone.event_id: 2, later.event_id: 1}
    for request in board.receiver.requests:
        verify(request)
    # Webhooks flow again.
    after = board.send_test("after")
    board.wait_delivery(after.delivery_id, SUCCEEDED)
    assert detail(live, "agency-a").summary.status == ACTIVE


# -- sessions across agencies ---------------------------------------------------------------------


def test_list_all_sessions_filters_and_pages(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    a = dashboard(live, "agency-a", with_receiver=False)
    b = dashboard(live, "agency-b", with_receiver=False)
    made = [a.create_session("t1"), a.create_session("t1"), a.create_session("t2"), b.create_session("t1")]
    made += [a.working_session("t1"), b.working_session("t1")]
    gone = a.create_session("t2")
    a.sessions.DeleteSession(sessions_pb2.DeleteSessionRequest(session_id=gone.session_id), metadata=a.auth)
    where = {s.session_id: (s.agency_id, s.tenant_id) for s in made}

    def list_all(page_size: int = 100, **fields: Any) -> list[common_pb2.Session]:
        found: list[common_pb2.Session] = []
        token = ""
        while True:
            page = admin(live).ListAllSessions(
                admin_pb2.ListAllSessionsRequest(page_size=page_size, page_token=token, **fields),
                metadata=MASTER_AUTH,
            )
            found.extend(page.sessions)
            token = page.next_page_token
            if not token:
                return found
            assert len(found) < 100, "pagination does not end"

    def ids(**fields: Any) -> set[str]:
        return {s.session_id for s in list_all(**fields)}

    everything = list_all()
    assert len(everything) == 6
    assert {s.session_id: (s.agency_id, s.tenant_id) for s in everything} == where
    assert all(s.provider == "sandbox" and s.name for s in everything)
    assert ids(agency_id="agency-a") == {s for s, (agency, _) in where.items() if agency == "agency-a"}
    assert ids(agency_id="agency-a", tenant_id="t1") == {
        made[0].session_id,
        made[1].session_id,
        made[4].session_id,
    }
    assert ids(tenant_id="t1") == {s for s, (_, tenant) in where.items() if tenant == "t1"}
    assert ids(status=WORKING) == {made[4].session_id, made[5].session_id}
    assert ids(agency_id="agency-b", status=WORKING) == {made[5].session_id}
    assert ids(status=common_pb2.SESSION_STATUS_STOPPED) == {s.session_id for s in made[:4]}
    assert ids(provider="sandbox") == set(where)
    assert ids(provider="waha") == set()
    assert ids(tenant_id="t3") == set()

    # Pages follow one another without gaps or repeats, newest first.
    for size in (1, 4, 5):
        paged = [s.session_id for s in list_all(page_size=size)]
        assert paged == [s.session_id for s in everything]
    first = admin(live).ListAllSessions(admin_pb2.ListAllSessionsRequest(page_size=4), metadata=MASTER_AUTH)
    assert len(first.sessions) == 4 and first.next_page_token

    error = rpc_error(
        lambda: admin(live).ListAllSessions(
            admin_pb2.ListAllSessionsRequest(agency_id="nobody"), metadata=MASTER_AUTH
        )
    )
    assert error.code() is grpc.StatusCode.NOT_FOUND


def test_list_dashboard_sessions_filters_and_pages(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    a = dashboard(live, "agency-a", with_receiver=False)
    b = dashboard(live, "agency-b", with_receiver=False)
    made = [a.create_session("t1"), a.create_session("t2"), a.create_session("t2"), a.working_session("t2")]
    b.create_session("t1")

    def page(**fields: Any) -> admin_pb2.ListDashboardSessionsResponse:
        return admin(live).ListDashboardSessions(
            admin_pb2.ListDashboardSessionsRequest(**fields), metadata=MASTER_AUTH
        )

    listed = page(agency_id="agency-a").sessions
    assert {s.session_id for s in listed} == {s.session_id for s in made}
    assert all(s.agency_id == "agency-a" for s in listed)
    assert {s.session_id: s.tenant_id for s in listed} == {s.session_id: s.tenant_id for s in made}
    assert {s.session_id for s in page(agency_id="agency-a", tenant_id="t2").sessions} == {
        s.session_id for s in made[1:]
    }
    assert [s.session_id for s in page(agency_id="agency-a", status=WORKING).sessions] == [made[3].session_id]
    assert [s.tenant_id for s in page(agency_id="agency-b").sessions] == ["t1"]

    first = page(agency_id="agency-a", page_size=3)
    second = page(agency_id="agency-a", page_size=3, page_token=first.next_page_token)
    assert len(first.sessions) == 3 and len(second.sessions) == 1 and not second.next_page_token
    assert [s.session_id for s in [*first.sessions, *second.sessions]] == [s.session_id for s in listed]

    assert rpc_error(lambda: page(agency_id="nobody")).code() is grpc.StatusCode.NOT_FOUND
    assert bad_fields(rpc_error(lambda: page())) == {"agencyId"}


# -- deliveries across agencies -------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_recover_failed_deliveries(
    backend: str, start_engine: Callable[..., LiveEngine], dashboard: Callable[..., Board]
) -> None:
    live = start_engine(backend, webhook_retry_schedule=())
    board = dashboard(live, "agency-a")
    other = dashboard(live, "agency-b")
    assert board.receiver is not None and other.receiver is not None
    board.receiver.respond(500)
    other.receiver.respond(500)

    early = [board.send_test("early 1"), board.send_test("early 2")]
    for d in early:
        assert board.wait_delivery(d.delivery_id, FAILED).attempt_count == 1
    late = [board.send_test("late 1"), board.send_test("late 2")]
    others = [other.send_test("other")]
    for d in late:
        board.wait_delivery(d.delivery_id, FAILED)
    other.wait_delivery(others[0].delivery_id, FAILED)
    assert health(live).outbox.failed == 5
    assert {(d.agency_id, d.delivery_id) for d in all_deliveries(live, status=FAILED)} == {
        *(("agency-a", d.delivery_id) for d in early + late),
        ("agency-b", others[0].delivery_id),
    }

    board.receiver.respond(200)
    other.receiver.respond(200)

    def recover(agency_id: str, since: Timestamp | None = None) -> int:
        request = admin_pb2.RecoverFailedDeliveriesRequest(agency_id=agency_id)
        if since is not None:
            request.since.CopyFrom(since)
        return int(admin(live).RecoverFailedDeliveries(request, metadata=MASTER_AUTH).recovered)

    since = late[0].create_time
    assert to_datetime(early[-1].create_time) < to_datetime(since)
    assert recover("agency-a", since) == 2
    for d in late:
        done = board.wait_delivery(d.delivery_id, SUCCEEDED)
        assert [a.response_status for a in done.attempts] == [500, 200]
    assert board.receiver.stays_at(6, 0.4)
    assert all(board.delivery(d.delivery_id).status == FAILED for d in early)

    assert recover("agency-a") == 2
    for d in early:
        board.wait_delivery(d.delivery_id, SUCCEEDED)
    assert board.receiver.count_by_id() == {d.event_id: 2 for d in early + late}
    for request in board.receiver.requests:
        verify(request)
    # Nothing of the other agency moved; nothing is left to recover here.
    assert other.delivery(others[0].delivery_id).status == FAILED
    assert len(other.receiver.requests) == 1
    assert recover("agency-a") == 0
    future = Timestamp()
    future.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    assert recover("agency-b", future) == 0
    assert recover("agency-b") == 1
    other.wait_delivery(others[0].delivery_id, SUCCEEDED)
    assert health(live).outbox.failed == 0
    assert rpc_error(lambda: recover("nobody")).code() is grpc.StatusCode.NOT_FOUND


def test_list_all_deliveries_across_agencies(live: LiveEngine, dashboard: Callable[..., Board]) -> None:
    a = dashboard(live, "agency-a")
    b = dashboard(live, "agency-b")
    a.working_session("t1")
    tests_a = [a.send_test(f"a{n}") for n in range(3)]
    tests_b = [b.send_test(f"b{n}") for n in range(2)]
    settled = a.wait_settled() + b.wait_settled()
    sessions_a = [d for d in settled if d.event_type == "session.status"]
    assert sessions_a and all(d.agency_id == "agency-a" for d in sessions_a)

    def ids(**fields: Any) -> set[str]:
        return {d.delivery_id for d in all_deliveries(live, **fields)}

    everything = all_deliveries(live)
    assert {d.delivery_id for d in everything} == {d.delivery_id for d in settled}
    assert len(everything) == len(settled)
    assert {d.agency_id for d in everything} == {"agency-a", "agency-b"}
    # Newest first.
    assert [d.delivery_id for d in everything] == sorted((d.delivery_id for d in everything), reverse=True)
    assert ids(agency_id="agency-b") == {d.delivery_id for d in tests_b}
    assert ids(event_type="webhook.test") == {d.delivery_id for d in tests_a + tests_b}
    assert ids(event_type="session.status") == {d.delivery_id for d in sessions_a}
    assert ids(agency_id="agency-b", event_type="session.status") == set()
    assert ids(status=SUCCEEDED) == {d.delivery_id for d in settled}
    assert ids(status=FAILED) == set()
    assert ids(agency_id="nobody") == set()

    seen: list[str] = []
    token = ""
    for _ in range(50):
        page = admin(live).ListAllDeliveries(
            admin_pb2.ListAllDeliveriesRequest(page_size=2, page_token=token), metadata=MASTER_AUTH
        )
        assert len(page.deliveries) <= 2
        seen.extend(d.delivery_id for d in page.deliveries)
        token = page.next_page_token
        if not token:
            break
    assert seen == [d.delivery_id for d in everything]


# -- system health --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_system_health(
    backend: str, start_engine: Callable[..., LiveEngine], dashboard: Callable[..., Board]
) -> None:
    started = time.monotonic()
    # A failed attempt is retried after 30 s (so it stays "retrying"); slow answers are waited for.
    live = start_engine(backend, webhook_retry_schedule=(30.0,), webhook_timeout_seconds=20.0)
    first = health(live)
    assert first.database_ok
    assert 0 < first.database_latency_ms < 5000
    assert 0 <= first.uptime_seconds <= time.monotonic() - started + 1
    assert first.version == __version__ and first.version
    assert counts_of(first.outbox) == {"due": 0, "retrying": 0, "held": 0, "failed": 0}
    assert first.delivery_success_rate_5m == 1.0
    assert first.delivery_p95_latency_ms_5m == 0.0
    assert dict(first.provider_status) == {"sandbox": "ok"}

    board = dashboard(live, "agency-a")
    held_board = dashboard(live, "agency-b")
    assert board.receiver is not None
    answers = {"ok": Reply(200, delay=0.08), "fail": Reply(500), "slow": Reply(200, delay=30)}
    board.receiver.respond_with(lambda request: answers[request.json["test"]["note"]])
    ok = [board.send_test("ok") for _ in range(3)]
    failing = board.send_test("fail")
    for d in ok:
        board.wait_delivery(d.delivery_id, SUCCEEDED)
    eventually(
        lambda: board.delivery(failing.delivery_id), lambda d: d.attempt_count == 1, "the failed attempt"
    )
    # SendTestWebhook waits for its attempt: the slow one stays PENDING (leased) while it runs.
    slow = board.start_test("slow")
    board.receiver.wait_until(
        lambda got: any(r.json.get("test", {}).get("note") == "slow" for r in got), what="the slow one"
    )
    suspend(live, "agency-b")
    held = held_board.send_test("held", auth=MASTER_AUTH)
    held_board.wait_delivery(held.delivery_id, HELD)

    # Rejections: three unknown credentials, two calls over a dashboard's limit.
    registry = registry_pb2_grpc.RegistryServiceStub(live.channel)
    for wrong in ("wfe_" + "x" * 40, "garbage", ""):
        metadata = (("x-api-key", wrong),) if wrong else (("authorization", "PSK wrong"),)
        error = rpc_error(
            lambda metadata=metadata: registry.ListAgencies(
                registry_pb2.ListAgenciesRequest(), metadata=metadata
            )
        )
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    admin(live).SetDashboardRateLimit(
        admin_pb2.SetDashboardRateLimitRequest(
            agency_id="agency-a", rate_limit=common_pb2.RateLimit(requests_per_second=0.01, burst=1)
        ),
        metadata=MASTER_AUTH,
    )
    codes = []
    for _ in range(3):
        try:
            registry.GetDashboardConfig(registry_pb2.GetDashboardConfigRequest(), metadata=board.auth)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            codes.append(error.code())
    assert codes == [
        grpc.StatusCode.OK,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ]

    # Unroutable provider events: two events for sessions nobody has.
    webhooks = webhook_pb2_grpc.WebhookServiceStub(live.channel)
    for name in ("nobody-1", "nobody-2"):
        request, metadata = signed_sandbox_webhook(live, name)
        assert webhooks.ReceiveProviderWebhook(request, metadata=metadata).unroutable == 1

    now = health(live)
    assert now.database_ok and now.database_latency_ms > 0
    assert counts_of(now.outbox) == {"due": 1, "retrying": 1, "held": 1, "failed": 0}
    assert now.delivery_success_rate_5m == pytest.approx(0.75)
    assert 60 <= now.delivery_p95_latency_ms_5m < 5000
    assert now.auth_failures - first.auth_failures == 3
    assert now.rate_limit_rejections - first.rate_limit_rejections == 2
    assert now.unroutable_provider_events - first.unroutable_provider_events == 2
    assert dict(now.provider_status) == {"sandbox": "ok"}
    assert now.version == __version__
    assert now.uptime_seconds <= time.monotonic() - started + 1
    assert not slow.done(), "the slow delivery's attempt ended while it was counted as due"
    slow.cancel()


def counts_of(backlog: admin_pb2.OutboxBacklog) -> dict[str, int]:
    return {field.name: getattr(backlog, field.name) for field in backlog.DESCRIPTOR.fields}


@pytest.mark.parametrize("backend", BACKENDS)
def test_provider_status_follows_waha(
    backend: str, start_engine: Callable[..., LiveEngine], dashboard: Callable[..., Board]
) -> None:
    fake = FakeWaha().start()
    try:
        live = start_engine(
            backend,
            waha_url=fake.url,
            waha_api_key=SecretStr(DEFAULT_API_KEY),
            waha_webhook_secret=SecretStr(WAHA_SECRET),
        )
        assert dict(health(live).provider_status) == {"sandbox": "ok", "waha": "ok"}
        assert any(call.path == "/ping" for call in fake.requests)

        board = dashboard(live, "agency-a", with_receiver=False)
        on_waha = board.create_session("t1", provider="waha")
        on_sandbox = board.create_session("t1")
        for provider, expected in (("waha", on_waha), ("sandbox", on_sandbox)):
            listed = admin(live).ListAllSessions(
                admin_pb2.ListAllSessionsRequest(provider=provider), metadata=MASTER_AUTH
            )
            assert [(s.session_id, s.provider) for s in listed.sessions] == [(expected.session_id, provider)]
    finally:
        fake.stop()

    status = dict(health(live).provider_status)
    assert status["sandbox"] == "ok"
    assert status["waha"] and status["waha"] != "ok"
    assert DEFAULT_API_KEY not in status["waha"]
    assert health(live).database_ok


# -- gRPC health ----------------------------------------------------------------------------------


@pytest.fixture
def checking_engine(fresh_database_url: Callable[[str], str]) -> Iterator[Callable[[str], LiveEngine]]:
    """Factory: an engine that checks its database every 50 ms (set before it starts)."""
    started: list[LiveEngine] = []

    def make(backend: str) -> LiveEngine:
        engine = build_engine(base_settings(fresh_database_url(backend)), serve_http=False)
        engine.health_check_seconds = 0.05
        engine.start()
        live = LiveEngine(engine, grpc.insecure_channel(f"127.0.0.1:{engine.grpc_port}"), backend)
        started.append(live)
        return live

    yield make
    for live in started:
        live.channel.close()
        live.engine.stop(grace_seconds=0)


def serving_status(live: LiveEngine, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(live.channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grpc_health_stays_serving_while_the_database_is_fine(
    backend: str, checking_engine: Callable[[str], LiveEngine]
) -> None:
    live = checking_engine(backend)
    database = live.engine.database
    pings: list[float] = []
    ping = database.ping

    def counted_ping() -> float:
        latency = ping()
        pings.append(latency)
        return latency

    database.ping = counted_ping  # type: ignore[method-assign]
    register(live.channel, "agency-a")
    suspend(live, "agency-a", "still serving")
    # Serving all along while the engine checks its database a few times (counted, not timed:
    # a busy machine may run fewer checks in a given time).
    deadline = time.monotonic() + 10
    while len(pings) < 4:
        assert time.monotonic() < deadline, "the engine did not check its database"
        for service in ("", "workflow_engine.v1.AdminService", "workflow_engine.v1.SessionsService"):
            assert serving_status(live, service) == health_pb2.HealthCheckResponse.SERVING
        time.sleep(0.05)
    assert health(live).database_ok


def test_grpc_health_follows_the_sqlite_database(checking_engine: Callable[[str], LiveEngine]) -> None:
    live = checking_engine("sqlite")
    database = live.engine.database
    directory = Path(database.url.removeprefix("sqlite:///")).parent
    away = directory.with_name(directory.name + "-away")
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert serving_status(live) == serving
    try:
        directory.rename(away)
        database.dispose()  # pooled connections would keep the moved file open
        eventually(lambda: serving_status(live), lambda s: s == not_serving, "NOT_SERVING", timeout=5)
        assert serving_status(live, "workflow_engine.v1.AdminService") == not_serving
        unreachable = health(live)
        assert not unreachable.database_ok
        assert unreachable.database_latency_ms == 0
    finally:
        if away.exists():
            away.rename(directory)
    eventually(lambda: serving_status(live), lambda s: s == serving, "SERVING again", timeout=5)
    assert health(live).database_ok
