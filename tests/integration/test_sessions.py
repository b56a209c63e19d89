"""The sessions API over gRPC, on SQLite and PostgreSQL, with the built-in sandbox provider.

Most tests get a fresh engine whose sandbox pairs at once (`live`). Tests that must see a
session wait in SCAN_QR_CODE share one engine per backend whose sandbox takes 30 s to pair;
they move sessions through the states they need by having the sandbox report them through
the engine's provider ingress (as a phone scanning the QR code would).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from engine.app import build_engine
from engine.ids import new_id
from engine.sessions.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from tests.support.constants import BACKENDS
from tests.support.live import LiveEngine, base_settings
from tests.support.rpc import MASTER_AUTH, Metadata, api_key_auth, detail_of, register
from tests.support.waiting import eventually
from workflow_engine.v1 import common_pb2, sessions_pb2, sessions_pb2_grpc

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# -- helpers ------------------------------------------------------------------------------------


def status_name(value: int) -> str:
    return str(common_pb2.SessionStatus.Name(value)).removeprefix("SESSION_STATUS_")


def message_status_name(value: int) -> str:
    return str(common_pb2.MessageStatus.Name(value)).removeprefix("MESSAGE_STATUS_")


def next_millisecond() -> None:
    """Wait until the clock's millisecond changes: what is made next is strictly later in every clock."""
    now = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == now:
        time.sleep(0.0002)


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def bad_fields(error: grpc.RpcError) -> set[str]:
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
    violations = detail_of(error, error_details_pb2.BadRequest).field_violations
    return {v.field for v in violations}


@dataclass
class Dashboard:
    """A caller of the SessionsService (a dashboard key, or the master key naming an agency)."""

    live: LiveEngine
    metadata: Metadata
    agency_id: str = ""

    @property
    def stub(self) -> sessions_pb2_grpc.SessionsServiceStub:
        return sessions_pb2_grpc.SessionsServiceStub(self.live.channel)

    def create(self, tenant_id: str = "t1", **fields: Any) -> common_pb2.Session:
        request = sessions_pb2.CreateSessionRequest(agency_id=self.agency_id, tenant_id=tenant_id, **fields)
        return self.stub.CreateSession(request, metadata=self.metadata).session

    def get(self, session_id: str, tenant_id: str = "") -> common_pb2.Session:
        request = sessions_pb2.GetSessionRequest(
            agency_id=self.agency_id, tenant_id=tenant_id, session_id=session_id
        )
        return self.stub.GetSession(request, metadata=self.metadata).session

    def action(self, name: str, session_id: str) -> Any:
        """Start, Stop, Logout, Delete (the response's session) or GetSessionQr (the response)."""
        method = getattr(self.stub, name)
        request_class = getattr(sessions_pb2, f"{name}Request")
        response = method(
            request_class(agency_id=self.agency_id, session_id=session_id), metadata=self.metadata
        )
        return response if name == "GetSessionQr" else response.session

    def start(self, session_id: str) -> common_pb2.Session:
        return self.action("StartSession", session_id)

    def stop(self, session_id: str) -> common_pb2.Session:
        return self.action("StopSession", session_id)

    def logout(self, session_id: str) -> common_pb2.Session:
        return self.action("LogoutSession", session_id)

    def delete(self, session_id: str) -> common_pb2.Session:
        return self.action("DeleteSession", session_id)

    def qr(self, session_id: str) -> sessions_pb2.GetSessionQrResponse:
        return self.action("GetSessionQr", session_id)

    def send(self, session_id: str, to: str = "+1 555 000 2222", text: str = "Hello") -> common_pb2.Message:
        request = sessions_pb2.SendMessageRequest(
            agency_id=self.agency_id, session_id=session_id, to=to, text=text
        )
        return self.stub.SendMessage(request, metadata=self.metadata).message

    def inbound(self, session_id: str, sender: str = "15550003333", text: str = "Hi!") -> common_pb2.Message:
        request = sessions_pb2.SimulateInboundMessageRequest(
            agency_id=self.agency_id, session_id=session_id, text=text, **{"from": sender}
        )
        return self.stub.SimulateInboundMessage(request, metadata=self.metadata).message

    def sessions(self, **fields: Any) -> sessions_pb2.ListSessionsResponse:
        request = sessions_pb2.ListSessionsRequest(agency_id=self.agency_id, **fields)
        return self.stub.ListSessions(request, metadata=self.metadata)

    def conversations(self, **fields: Any) -> sessions_pb2.ListConversationsResponse:
        request = sessions_pb2.ListConversationsRequest(agency_id=self.agency_id, **fields)
        return self.stub.ListConversations(request, metadata=self.metadata)

    def messages(self, conversation_id: str, **fields: Any) -> sessions_pb2.ListMessagesResponse:
        request = sessions_pb2.ListMessagesRequest(
            agency_id=self.agency_id, conversation_id=conversation_id, **fields
        )
        return self.stub.ListMessages(request, metadata=self.metadata)

    def wait_status(self, session_id: str, status: str) -> common_pb2.Session:
        return eventually(
            lambda: self.get(session_id),
            lambda s: status_name(s.status) == status,
            f"session {session_id} to be {status}",
        )

    def working(self, tenant_id: str = "t1") -> common_pb2.Session:
        """A new session, started and paired (on an engine that pairs at once)."""
        session = self.create(tenant_id)
        self.start(session.session_id)
        return self.wait_status(session.session_id, "WORKING")


#: Where registered dashboards receive their webhooks: nothing listens, so deliveries fail at once
#: (these tests are about sessions, and no delivery is left in flight when an engine stops).
DASHBOARD_URL = "http://127.0.0.1:9/hooks"


def dashboard(live: LiveEngine, agency_id: str = "agency-a") -> Dashboard:
    """A registered agency calling with its own key (agencyId left for the key to fill)."""
    return Dashboard(
        live, api_key_auth(register(live.channel, agency_id, dashboard_url=DASHBOARD_URL).api_key)
    )


def provider_reports(live: LiveEngine, session_id: str, status: str, account_id: str = "") -> None:
    """Have the sandbox report a status change through the provider ingress, as a phone would."""
    sandbox = live.engine.providers["sandbox"]
    assert isinstance(sandbox, SandboxProvider)
    body = json.dumps(
        {
            "id": new_id("sbxevt"),
            "event": "session.status",
            "session": session_id,
            "payload": {"status": status, "me": account_id},
        }
    ).encode()
    result = live.engine.ingress.accept("sandbox", body, {SIGNATURE_HEADER: sandbox.sign(body)})
    assert result.accepted == 1


def page_through(list_page: Callable[[str], tuple[list[str], str]]) -> tuple[list[str], int]:
    """Every id of a paginated listing, in order, and the number of pages."""
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        ids, token = list_page(token)
        seen.extend(ids)
        pages += 1
        assert pages < 50, "pagination does not end"
        if not token:
            return seen, pages


# -- a shared engine whose sandbox pairs slowly ---------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def slow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """One engine per backend for this module whose sandbox shows its QR code for 30 s."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sessions') / 'engine.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"sessions_test_{uuid.uuid4().hex[:12]}")
    engine = build_engine(base_settings(url, sandbox_pairing_seconds=30.0), serve_http=False)
    engine.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{engine.grpc_port}")
    live = LiveEngine(engine, channel, request.param)
    try:
        yield dashboard(live, "slow-agency")
    finally:
        channel.close()
        engine.stop(grace_seconds=0)


def in_state(slow: Dashboard, state: str) -> common_pb2.Session:
    """A new session of the slow engine in `state` (STOPPED_PAIRED and FAILED_PAIRED are paired)."""
    live = slow.live
    session = slow.create()
    sid = session.session_id
    if state == "STOPPED":
        pass
    elif state in ("STARTING", "FAILED"):
        provider_reports(live, sid, state)
    elif state == "SCAN_QR_CODE":
        slow.start(sid)
        slow.wait_status(sid, "SCAN_QR_CODE")
    elif state in ("WORKING", "STOPPED_PAIRED", "FAILED_PAIRED"):
        slow.start(sid)
        slow.wait_status(sid, "SCAN_QR_CODE")
        provider_reports(live, sid, "WORKING", "15550009999")
        if state == "STOPPED_PAIRED":
            slow.stop(sid)
        elif state == "FAILED_PAIRED":
            provider_reports(live, sid, "FAILED")
    else:
        raise AssertionError(state)
    current = slow.get(sid)
    assert status_name(current.status) == state.removesuffix("_PAIRED")
    assert bool(current.account_id) == (state.endswith("_PAIRED") or state == "WORKING")
    return current


# -- the whole lifecycle --------------------------------------------------------------------------


def test_full_lifecycle_on_the_sandbox(live: LiveEngine) -> None:
    a = dashboard(live)

    created = a.create("t1", name="Front desk", metadata={"branch": "north", "plan": "gold"})
    assert created.session_id.startswith("ses_")
    assert (created.agency_id, created.tenant_id, created.name) == ("agency-a", "t1", "Front desk")
    assert created.provider == "sandbox"
    assert status_name(created.status) == "STOPPED"
    assert dict(created.metadata) == {"branch": "north", "plan": "gold"}
    assert created.account_id == ""
    assert created.create_time.ToDatetime() == created.update_time.ToDatetime()
    assert [s.session_id for s in a.sessions().sessions] == [created.session_id]
    assert a.get(created.session_id) == created
    sid = created.session_id

    starting = a.start(sid)
    assert status_name(starting.status) == "STARTING"
    assert starting.update_time.ToDatetime() >= created.update_time.ToDatetime()
    working = a.wait_status(sid, "WORKING")
    account = working.account_id
    assert account.isdigit() and len(account) >= 10

    stopped = a.stop(sid)
    assert status_name(stopped.status) == "STOPPED"
    assert stopped.account_id == account  # stopping keeps the pairing

    # Paired: starting again goes straight back to the same account, without a new QR code.
    assert status_name(a.start(sid).status) == "STARTING"
    assert a.wait_status(sid, "WORKING").account_id == account

    logged_out = a.logout(sid)
    assert status_name(logged_out.status) == "STOPPED"
    assert logged_out.account_id == ""
    assert a.get(sid).account_id == ""

    # Unpaired: starting pairs again (through a QR code) with a new account.
    a.start(sid)
    repaired = a.wait_status(sid, "WORKING")
    assert repaired.account_id and repaired.account_id != account

    deleted = a.delete(sid)
    assert deleted.session_id == sid
    assert status_name(deleted.status) == "STOPPED"
    assert rpc_error(lambda: a.get(sid)).code() is grpc.StatusCode.NOT_FOUND
    assert a.sessions().sessions == []
    for action in ("StartSession", "StopSession", "LogoutSession", "DeleteSession", "GetSessionQr"):
        assert rpc_error(lambda action=action: a.action(action, sid)).code() is grpc.StatusCode.NOT_FOUND


def test_created_session_gets_its_id_as_name_and_the_default_provider(slow: Dashboard) -> None:
    session = slow.create("t1")
    assert session.name == session.session_id
    assert session.provider == "sandbox"
    assert dict(session.metadata) == {}


def test_unknown_session_is_not_found(slow: Dashboard) -> None:
    error = rpc_error(lambda: slow.get("ses_01JD3Q7T3XG0S8N2A6V5QK9ZB4"))
    assert error.code() is grpc.StatusCode.NOT_FOUND


# -- QR codes and invalid transitions -------------------------------------------------------------


def test_qr_code_only_while_scanning(slow: Dashboard) -> None:
    session = slow.create()
    sid = session.session_id
    refused = rpc_error(lambda: slow.qr(sid))
    assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "STOPPED" in refused.details()

    slow.start(sid)
    slow.wait_status(sid, "SCAN_QR_CODE")
    qr = slow.qr(sid)
    assert qr.value
    assert qr.png.startswith(PNG_SIGNATURE)
    assert qr.mime_type == "image/png"
    assert slow.qr(sid).value == qr.value  # the same code until it is scanned

    provider_reports(slow.live, sid, "WORKING", "15550004444")
    assert slow.get(sid).account_id == "15550004444"
    refused = rpc_error(lambda: slow.qr(sid))
    assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "WORKING" in refused.details()

    # Logged out, the session must be paired again: a new QR code.
    slow.logout(sid)
    slow.start(sid)
    slow.wait_status(sid, "SCAN_QR_CODE")
    again = slow.qr(sid)
    assert again.value and again.value != qr.value
    assert again.png.startswith(PNG_SIGNATURE)

    # Stopped while scanning: no QR code, and starting again shows a fresh one.
    slow.stop(sid)
    assert "STOPPED" in rpc_error(lambda: slow.qr(sid)).details()
    slow.start(sid)
    slow.wait_status(sid, "SCAN_QR_CODE")
    assert slow.qr(sid).value not in ("", again.value)


STATES = ("STOPPED", "STOPPED_PAIRED", "STARTING", "SCAN_QR_CODE", "WORKING", "FAILED", "FAILED_PAIRED")
ACTIONS = ("start", "stop", "logout", "qr", "send", "inbound")
#: The states each action is allowed from; from every other state it is FAILED_PRECONDITION.
ALLOWED_FROM = {
    "start": {"STOPPED", "STOPPED_PAIRED", "FAILED", "FAILED_PAIRED"},
    "stop": {"STARTING", "SCAN_QR_CODE", "WORKING", "FAILED", "FAILED_PAIRED"},
    "logout": {"STOPPED_PAIRED", "WORKING", "FAILED_PAIRED"},
    "qr": {"SCAN_QR_CODE"},
    "send": {"WORKING"},
    "inbound": {"WORKING"},
}


def _act(slow: Dashboard, action: str, sid: str) -> Any:
    if action == "send":
        return slow.send(sid)
    if action == "inbound":
        return slow.inbound(sid)
    return getattr(slow, action)(sid)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_transition_matrix(slow: Dashboard, action: str, state: str) -> None:
    session = in_state(slow, state)
    sid = session.session_id
    status = state.removesuffix("_PAIRED")

    if state not in ALLOWED_FROM[action]:
        error = rpc_error(lambda: _act(slow, action, sid))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION, error.details()
        assert status in error.details()
        unchanged = slow.get(sid)
        assert (unchanged.status, unchanged.account_id) == (session.status, session.account_id)
        return

    result = _act(slow, action, sid)
    after = slow.get(sid)
    if action == "start":
        assert status_name(result.status) == "STARTING"
    elif action == "stop":
        assert status_name(result.status) == "STOPPED"
        assert after.account_id == session.account_id
    elif action == "logout":
        assert status_name(result.status) == "STOPPED"
        assert after.account_id == ""
    elif action == "qr":
        assert result.png.startswith(PNG_SIGNATURE)
    else:
        assert result.message_id.startswith("msg_")


def test_transition_matrix_covers_every_state_and_action() -> None:
    assert set(ALLOWED_FROM) == set(ACTIONS)
    assert {s.removesuffix("_PAIRED") for s in STATES} == {
        v.name.removeprefix("SESSION_STATUS_") for v in common_pb2.SessionStatus.DESCRIPTOR.values
    } - {"UNSPECIFIED"}


# -- messages -------------------------------------------------------------------------------------


def test_send_message_and_acks_reach_read(live: LiveEngine) -> None:
    a = dashboard(live)
    session = a.working()
    sid = session.session_id

    sent = a.send(sid, to="+1 555 000 2222", text="Hello from the engine")
    assert sent.message_id.startswith("msg_")
    assert sent.provider_message_id
    assert message_status_name(sent.status) == "PENDING"
    assert sent.direction == common_pb2.MESSAGE_DIRECTION_OUTBOUND
    assert getattr(sent, "from") == f"{session.account_id}@c.us"
    assert sent.to == "15550002222@c.us"
    assert (sent.agency_id, sent.tenant_id, sent.session_id) == ("agency-a", "t1", sid)
    assert sent.text == "Hello from the engine"

    read = eventually(
        lambda: a.messages(sent.conversation_id).messages,
        lambda ms: [message_status_name(m.status) for m in ms] == ["READ"],
        "the message to be read",
    )[0]
    assert read.message_id == sent.message_id
    assert read.provider_message_id == sent.provider_message_id
    assert read.update_time.ToDatetime() > sent.create_time.ToDatetime()

    (conversation,) = a.conversations().conversations
    assert conversation.conversation_id == sent.conversation_id
    assert conversation.peer == "15550002222@c.us"
    assert conversation.session_id == sid
    assert conversation.message_count == 1
    assert conversation.last_message_text == "Hello from the engine"


def test_simulated_inbound_messages_create_conversations(live: LiveEngine) -> None:
    a = dashboard(live)
    session = a.working()
    sid = session.session_id

    first = a.inbound(sid, sender="+1 555 000 3333", text="Hi! Is this open today?")
    assert first.direction == common_pb2.MESSAGE_DIRECTION_INBOUND
    assert message_status_name(first.status) == "RECEIVED"
    assert getattr(first, "from") == "15550003333@c.us"
    assert first.to == f"{session.account_id}@c.us"
    assert first.provider_message_id
    assert first.text == "Hi! Is this open today?"
    (conversation,) = a.conversations(session_id=sid).conversations
    assert conversation.conversation_id == first.conversation_id
    assert (conversation.peer, conversation.message_count) == ("15550003333@c.us", 1)

    next_millisecond()
    second = a.inbound(sid, sender="15550003333@c.us", text="Hello?")  # the same peer, as a chat id
    assert second.conversation_id == first.conversation_id
    next_millisecond()
    reply = a.send(sid, to="15550003333", text="Yes, until 6.")
    assert reply.conversation_id == first.conversation_id
    next_millisecond()
    other = a.inbound(sid, sender="15550004444", text="Another peer")
    assert other.conversation_id != first.conversation_id

    conversations = a.conversations().conversations
    assert [c.conversation_id for c in conversations] == [other.conversation_id, first.conversation_id]
    assert conversations[1].message_count == 3
    assert conversations[1].last_message_text == "Yes, until 6."
    assert conversations[0].last_message_time.ToDatetime() >= conversations[1].last_message_time.ToDatetime()

    messages = a.messages(first.conversation_id).messages
    assert [m.message_id for m in messages] == [reply.message_id, second.message_id, first.message_id]
    assert [m.text for m in messages] == ["Yes, until 6.", "Hello?", "Hi! Is this open today?"]
    assert [m.direction for m in messages] == [
        common_pb2.MESSAGE_DIRECTION_OUTBOUND,
        common_pb2.MESSAGE_DIRECTION_INBOUND,
        common_pb2.MESSAGE_DIRECTION_INBOUND,
    ]


# -- listings -------------------------------------------------------------------------------------


def test_list_sessions_filters_by_tenant_and_status(live: LiveEngine) -> None:
    a = dashboard(live)
    t1_working = a.working("t1")
    t1_stopped = a.create("t1")
    t2_stopped = a.create("t2")

    def ids(**fields: Any) -> set[str]:
        return {s.session_id for s in a.sessions(**fields).sessions}

    everything = {t1_working.session_id, t1_stopped.session_id, t2_stopped.session_id}
    assert ids() == everything
    assert ids(tenant_id="t1") == {t1_working.session_id, t1_stopped.session_id}
    assert ids(tenant_id="t2") == {t2_stopped.session_id}
    assert ids(tenant_id="t3") == set()
    assert ids(status=common_pb2.SESSION_STATUS_WORKING) == {t1_working.session_id}
    assert ids(status=common_pb2.SESSION_STATUS_STOPPED) == {t1_stopped.session_id, t2_stopped.session_id}
    assert ids(status=common_pb2.SESSION_STATUS_STOPPED, tenant_id="t1") == {t1_stopped.session_id}
    assert ids(status=common_pb2.SESSION_STATUS_SCAN_QR_CODE) == set()
    assert ids(status=common_pb2.SESSION_STATUS_UNSPECIFIED) == everything


def test_list_sessions_with_an_undefined_status_number_is_invalid_argument(slow: Dashboard) -> None:
    error = rpc_error(lambda: slow.sessions(status=99))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert bad_fields(error) == {"status"}


def test_list_sessions_paginates_newest_first_without_duplicates_or_gaps(live: LiveEngine) -> None:
    a = dashboard(live)
    created = []
    for index in range(7):
        next_millisecond()
        created.append(a.create("t1" if index % 3 else "t2").session_id)

    def page(token: str, **fields: Any) -> tuple[list[str], str]:
        response = a.sessions(page_size=3, page_token=token, **fields)
        assert len(response.sessions) <= 3
        return [s.session_id for s in response.sessions], response.next_page_token

    seen, pages = page_through(page)
    assert seen == created[::-1]
    assert pages == 3
    t1 = [sid for index, sid in enumerate(created) if index % 3]
    seen, pages = page_through(lambda token: page(token, tenant_id="t1"))
    assert seen == t1[::-1]
    assert pages == 2
    # The default page holds them all, with no next page.
    everything = a.sessions()
    assert len(everything.sessions) == 7 and everything.next_page_token == ""


def test_conversations_and_messages_paginate(live: LiveEngine) -> None:
    a = dashboard(live)
    sid = a.working().session_id
    conversations = []
    for index in range(5):
        next_millisecond()
        conversations.append(a.inbound(sid, sender=f"1555000{index:04d}").conversation_id)
    messages = []
    for index in range(5):
        next_millisecond()
        messages.append(a.inbound(sid, sender="15550000000", text=f"message {index}").message_id)
    # Peer 0 wrote last: its conversation comes first, the others newest first.
    expected_conversations = [conversations[0], *conversations[:0:-1]]

    def conversation_page(token: str) -> tuple[list[str], str]:
        response = a.conversations(page_size=2, page_token=token)
        assert len(response.conversations) <= 2
        return [c.conversation_id for c in response.conversations], response.next_page_token

    seen, pages = page_through(conversation_page)
    assert seen == expected_conversations
    assert pages == 3

    def message_page(token: str) -> tuple[list[str], str]:
        response = a.messages(conversations[0], page_size=2, page_token=token)
        assert len(response.messages) <= 2
        return [m.message_id for m in response.messages], response.next_page_token

    seen, pages = page_through(message_page)
    assert len(seen) == 6
    assert seen[:5] == messages[::-1]
    assert pages == 3


@pytest.mark.parametrize("listing", ["ListSessions", "ListConversations", "ListMessages"])
@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [({"page_token": "not-a-token!"}, "pageToken"), ({"page_size": -1}, "pageSize")],
)
def test_bad_page_token_or_size_is_invalid_argument(
    slow: Dashboard, listing: str, fields: dict[str, Any], bad_field: str
) -> None:
    if listing == "ListSessions":
        call: Callable[[], Any] = lambda: slow.sessions(**fields)  # noqa: E731
    elif listing == "ListConversations":
        call = lambda: slow.conversations(**fields)  # noqa: E731
    else:
        conversation_id = slow.inbound(in_state(slow, "WORKING").session_id).conversation_id
        assert slow.messages(conversation_id).messages  # the conversation itself is listable
        call = lambda: slow.messages(conversation_id, **fields)  # noqa: E731
    assert bad_fields(rpc_error(call)) == {bad_field}


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"tenant_id": ""}, {"tenantId"}, id="missing-tenant"),
        pytest.param({"tenant_id": "tenant one"}, {"tenantId"}, id="bad-tenant"),
        pytest.param({"tenant_id": "t" * 65}, {"tenantId"}, id="long-tenant"),
        pytest.param({"provider": "carrier-pigeon"}, {"provider"}, id="bad-provider"),
        pytest.param({"metadata": {"bad key": "x"}}, {"metadata"}, id="metadata-key"),
        pytest.param({"metadata": {"k" * 65: "x"}}, {"metadata"}, id="metadata-long-key"),
        pytest.param({"metadata": {"note": "line\nbreak"}}, {"metadata"}, id="metadata-control"),
        pytest.param({"metadata": {"note": "v" * 513}}, {"metadata"}, id="metadata-long-value"),
        pytest.param({"metadata": {f"k{i}": "v" for i in range(33)}}, {"metadata"}, id="metadata-entries"),
        pytest.param({"name": "tab\there"}, {"name"}, id="name-control"),
        pytest.param({"name": "n" * 201}, {"name"}, id="name-long"),
        pytest.param(
            {"tenant_id": "", "provider": "nope", "metadata": {"": "x"}},
            {"tenantId", "provider", "metadata"},
            id="all-at-once",
        ),
    ],
)
def test_create_session_validation(slow: Dashboard, fields: dict[str, Any], expected: set[str]) -> None:
    tenant = f"v{uuid.uuid4().hex[:10]}"
    request = {"tenant_id": tenant, **fields}
    error = rpc_error(lambda: slow.create(**request))
    assert bad_fields(error) == expected
    assert slow.sessions(tenant_id=tenant).sessions == []  # nothing was created


def test_create_session_validation_boundaries_are_accepted(slow: Dashboard) -> None:
    session = slow.create(
        "t" * 64,
        name="n" * 200,
        provider="sandbox",
        metadata={f"k{i}": "v" * 512 for i in range(31)} | {"k" * 64: "x"},
    )
    assert len(session.metadata) == 32


@pytest.mark.parametrize(
    ("to", "text", "expected"),
    [
        pytest.param("", "Hello", {"to"}, id="missing-to"),
        pytest.param("not a phone", "Hello", {"to"}, id="bad-to"),
        pytest.param("1234", "Hello", {"to"}, id="short-to"),
        pytest.param("15550002222@example.com", "Hello", {"to"}, id="bad-chat-id"),
        pytest.param("+1 555 000 2222", "", {"text"}, id="empty-text"),
        pytest.param("+1 555 000 2222", "   \n", {"text"}, id="blank-text"),
        pytest.param("+1 555 000 2222", "x" * 4097, {"text"}, id="oversized-text"),
        pytest.param("+1 555 000 2222", "nul\x00", {"text"}, id="nul-text"),
        pytest.param("nobody", "", {"to", "text"}, id="both"),
    ],
)
def test_send_message_validation(slow: Dashboard, to: str, text: str, expected: set[str]) -> None:
    session = in_state(slow, "WORKING")
    error = rpc_error(lambda: slow.send(session.session_id, to=to, text=text))
    assert bad_fields(error) == expected
    assert slow.conversations(session_id=session.session_id).conversations == []


@pytest.mark.parametrize(
    ("sender", "text", "expected"),
    [
        pytest.param("", "Hi", {"from"}, id="missing-from"),
        pytest.param("someone", "Hi", {"from"}, id="bad-from"),
        pytest.param("15550003333", "", {"text"}, id="empty-text"),
        pytest.param("15550003333", "x" * 4097, {"text"}, id="oversized-text"),
    ],
)
def test_simulate_inbound_validation(slow: Dashboard, sender: str, text: str, expected: set[str]) -> None:
    session = in_state(slow, "WORKING")
    error = rpc_error(lambda: slow.inbound(session.session_id, sender=sender, text=text))
    assert bad_fields(error) == expected
    assert slow.conversations(session_id=session.session_id).conversations == []


def test_longest_text_is_accepted(slow: Dashboard) -> None:
    sid = in_state(slow, "WORKING").session_id
    assert len(slow.send(sid, text="x" * 4096).text) == 4096
    assert len(slow.inbound(sid, text="y" * 4096).text) == 4096


# -- the master key -------------------------------------------------------------------------------


def test_master_key_acts_for_the_agency_it_names(live: LiveEngine) -> None:
    a = dashboard(live, "agency-a")
    master = Dashboard(live, MASTER_AUTH, agency_id="agency-a")

    session = master.create("t1", name="Made by the engine admin")
    assert session.agency_id == "agency-a"
    assert [s.session_id for s in a.sessions().sessions] == [session.session_id]
    master.start(session.session_id)
    working = master.wait_status(session.session_id, "WORKING")
    assert a.get(session.session_id) == working
    message = master.send(session.session_id)
    assert [c.conversation_id for c in a.conversations().conversations] == [message.conversation_id]
    assert [m.message_id for m in master.messages(message.conversation_id).messages] == [message.message_id]

    # The master key must name the agency: there is no agency of its own to fill in.
    anonymous = Dashboard(live, MASTER_AUTH)
    assert bad_fields(rpc_error(lambda: anonymous.create("t1"))) == {"agencyId"}
    assert rpc_error(lambda: anonymous.get(session.session_id)).code() is grpc.StatusCode.NOT_FOUND


def test_master_key_for_an_unregistered_agency(live: LiveEngine) -> None:
    dashboard(live, "agency-a").create("t1")
    ghost = Dashboard(live, MASTER_AUTH, agency_id="ghost-agency")

    error = rpc_error(lambda: ghost.create("t1"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "ghost-agency" in error.details()
    assert ghost.sessions().sessions == []
    assert ghost.conversations().conversations == []


# -- deletion -------------------------------------------------------------------------------------


def test_delete_keeps_the_history(live: LiveEngine) -> None:
    a = dashboard(live)
    sid = a.working().session_id
    sent = a.send(sid, text="before deletion")
    received = a.inbound(sid, sender="+1 555 000 2222", text="reply")
    assert received.conversation_id == sent.conversation_id

    a.delete(sid)

    assert rpc_error(lambda: a.get(sid)).code() is grpc.StatusCode.NOT_FOUND
    assert rpc_error(lambda: a.send(sid)).code() is grpc.StatusCode.NOT_FOUND
    assert rpc_error(lambda: a.inbound(sid)).code() is grpc.StatusCode.NOT_FOUND
    assert sid not in {s.session_id for s in a.sessions().sessions}
    for listing in (a.conversations(), a.conversations(session_id=sid), a.conversations(tenant_id="t1")):
        assert [c.conversation_id for c in listing.conversations] == [sent.conversation_id]
    history = a.messages(sent.conversation_id).messages
    assert {m.message_id for m in history} == {sent.message_id, received.message_id}
    assert {m.text for m in history} == {"before deletion", "reply"}
