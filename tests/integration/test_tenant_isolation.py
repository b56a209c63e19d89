"""Cross-agency and cross-tenant isolation of the SessionsService, on SQLite and PostgreSQL.

One world per backend: agency A with sessions (each with a conversation) in tenants t1 and
t2, and agency B with a session in a tenant that is also called t1. Every RPC that names a
session or a conversation is called on A's objects by every kind of outsider; each must
answer as if the object did not exist (or refuse outright when the caller names agency A),
and change nothing. Listings never show an outsider's objects.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from engine.app import build_engine
from tests.support.constants import BACKENDS
from tests.support.live import LiveEngine, base_settings
from tests.support.rpc import MASTER_AUTH, Metadata, api_key_auth, register
from workflow_engine.v1 import common_pb2, sessions_pb2, sessions_pb2_grpc

SERVICE = sessions_pb2.DESCRIPTOR.services_by_name["SessionsService"]
OBJECT_FIELDS = ("session_id", "conversation_id")
DEADLINE_SECONDS = 5.0
#: Where the dashboards receive webhooks: nothing listens, so deliveries fail at once and none is
#: still in flight when the module's engines stop.
DASHBOARD_URL = "http://127.0.0.1:9/hooks"
#: The tenant of A's objects made by control tests (never t1 or t2, whose listings are checked exactly).
CONTROL_TENANT = "t-control"

# -- the RPCs that name a session or a conversation -------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """How to call one RPC on an object, and what its owner gets on a WORKING session."""

    #: "session" or "conversation": the kind of object the request names.
    names: str
    #: Extra request fields that make the request otherwise valid.
    fields: dict[str, Any]
    #: The owner's answer (OK or the lifecycle's refusal): proof the request reaches the object.
    owner_code: grpc.StatusCode = grpc.StatusCode.OK
    #: True when the object id only filters a listing: outsiders get an empty list, not NOT_FOUND.
    filters: bool = False


RPCS: dict[str, Rpc] = {
    "GetSession": Rpc("session", {}),
    "DeleteSession": Rpc("session", {}),
    "StartSession": Rpc("session", {}, owner_code=grpc.StatusCode.FAILED_PRECONDITION),
    "StopSession": Rpc("session", {}),
    "LogoutSession": Rpc("session", {}),
    "GetSessionQr": Rpc("session", {}, owner_code=grpc.StatusCode.FAILED_PRECONDITION),
    "SendMessage": Rpc("session", {"to": "+1 555 000 7777", "text": "Hello"}),
    "SimulateInboundMessage": Rpc("session", {"from": "15550007777", "text": "Hi"}),
    "ListConversations": Rpc("session", {}, filters=True),
    "ListMessages": Rpc("conversation", {}),
}
#: RPCs that name no existing object; their isolation is checked by the listing tests below.
NO_OBJECT_RPCS = {"CreateSession", "ListSessions"}


def test_the_table_covers_every_rpc_that_names_a_session_or_conversation() -> None:
    naming = {
        method.name
        for method in SERVICE.methods
        if any(name in method.input_type.fields_by_name for name in OBJECT_FIELDS)
    }
    assert set(RPCS) == naming
    assert {method.name for method in SERVICE.methods} == set(RPCS) | NO_OBJECT_RPCS
    for name, rpc in RPCS.items():
        fields = SERVICE.methods_by_name[name].input_type.fields_by_name
        assert f"{rpc.names}_id" in fields, name
        assert "tenant_id" in fields and "agency_id" in fields, name


def call(
    live: LiveEngine, method: str, metadata: Metadata, agency_id: str, tenant_id: str, object_id: str
) -> Any:
    rpc = RPCS[method]
    request_class = getattr(sessions_pb2, f"{method}Request")
    request = request_class(
        agency_id=agency_id, tenant_id=tenant_id, **{f"{rpc.names}_id": object_id}, **rpc.fields
    )
    stub = sessions_pb2_grpc.SessionsServiceStub(live.channel)
    return getattr(stub, method)(request, metadata=metadata)


# -- the world ----------------------------------------------------------------------------------


@dataclass
class Caller:
    live: LiveEngine
    metadata: Metadata
    agency_id: str = ""

    @property
    def stub(self) -> sessions_pb2_grpc.SessionsServiceStub:
        return sessions_pb2_grpc.SessionsServiceStub(self.live.channel)

    def get(self, session_id: str) -> common_pb2.Session:
        request = sessions_pb2.GetSessionRequest(agency_id=self.agency_id, session_id=session_id)
        return self.stub.GetSession(request, metadata=self.metadata).session

    def working(self, tenant_id: str) -> common_pb2.Session:
        request = sessions_pb2.CreateSessionRequest(agency_id=self.agency_id, tenant_id=tenant_id)
        session_id = self.stub.CreateSession(request, metadata=self.metadata).session.session_id
        self.stub.StartSession(
            sessions_pb2.StartSessionRequest(agency_id=self.agency_id, session_id=session_id),
            metadata=self.metadata,
        )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while (session := self.get(session_id)).status != common_pb2.SESSION_STATUS_WORKING:
            assert time.monotonic() < deadline, f"session never became WORKING: {session}"
            time.sleep(0.01)
        return session

    def inbound(self, session_id: str, sender: str, text: str) -> common_pb2.Message:
        request = sessions_pb2.SimulateInboundMessageRequest(
            agency_id=self.agency_id, session_id=session_id, text=text, **{"from": sender}
        )
        return self.stub.SimulateInboundMessage(request, metadata=self.metadata).message

    def session_ids(self, **fields: Any) -> set[str]:
        request = sessions_pb2.ListSessionsRequest(agency_id=self.agency_id, **fields)
        return {s.session_id for s in self.stub.ListSessions(request, metadata=self.metadata).sessions}

    def conversations(self, **fields: Any) -> list[common_pb2.Conversation]:
        request = sessions_pb2.ListConversationsRequest(agency_id=self.agency_id, **fields)
        return list(self.stub.ListConversations(request, metadata=self.metadata).conversations)

    def conversation_ids(self, **fields: Any) -> set[str]:
        return {c.conversation_id for c in self.conversations(**fields)}

    def message_ids(self, conversation_id: str, **fields: Any) -> set[str]:
        request = sessions_pb2.ListMessagesRequest(
            agency_id=self.agency_id, conversation_id=conversation_id, **fields
        )
        return {m.message_id for m in self.stub.ListMessages(request, metadata=self.metadata).messages}


@dataclass
class World:
    live: LiveEngine
    a: Caller
    b: Caller
    #: A's session in t1 and t2, B's session (in B's own "t1").
    a_t1: common_pb2.Session
    a_t2: common_pb2.Session
    b_t1: common_pb2.Session
    #: Their conversations (one each) and messages.
    a_t1_conversation: str
    a_t2_conversation: str
    b_t1_conversation: str
    a_messages: set[str]
    b_messages: set[str]

    def object_of(self, rpc: Rpc, tenant: str) -> str:
        """A's session or conversation in `tenant` (t1 or t2)."""
        if rpc.names == "session":
            return (self.a_t1 if tenant == "t1" else self.a_t2).session_id
        return self.a_t1_conversation if tenant == "t1" else self.a_t2_conversation

    def a_is_untouched(self) -> None:
        """A's sessions and conversations are exactly as they were set up."""
        assert self.a.get(self.a_t1.session_id) == self.a_t1
        assert self.a.get(self.a_t2.session_id) == self.a_t2
        conversations = {c.conversation_id: c for c in self.a.conversations()}
        for conversation_id in (self.a_t1_conversation, self.a_t2_conversation):
            assert conversations[conversation_id].message_count == 1
        assert (
            self.a.message_ids(self.a_t1_conversation) | self.a.message_ids(self.a_t2_conversation)
            == self.a_messages
        )


def _database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('isolation') / 'engine.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.create_database(f"isolation_test_{uuid.uuid4().hex[:12]}"))


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One engine per backend and the objects of two agencies; tests must leave them as they are."""
    engine = build_engine(base_settings(_database_url(request, tmp_path_factory)), serve_http=False)
    engine.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{engine.grpc_port}")
    live = LiveEngine(engine, channel, request.param)
    try:
        a = Caller(live, api_key_auth(register(channel, "agency-a", dashboard_url=DASHBOARD_URL).api_key))
        b = Caller(live, api_key_auth(register(channel, "agency-b", dashboard_url=DASHBOARD_URL).api_key))
        a_t1, a_t2, b_t1 = a.working("t1"), a.working("t2"), b.working("t1")
        # The same peer writes to all three sessions.
        m1 = a.inbound(a_t1.session_id, "15550001111", "to A in t1")
        m2 = a.inbound(a_t2.session_id, "15550001111", "to A in t2")
        mb = b.inbound(b_t1.session_id, "15550001111", "to B in t1")
        yield World(
            live,
            a,
            b,
            a.get(a_t1.session_id),
            a.get(a_t2.session_id),
            b.get(b_t1.session_id),
            m1.conversation_id,
            m2.conversation_id,
            mb.conversation_id,
            {m1.message_id, m2.message_id},
            {mb.message_id},
        )
    finally:
        channel.close()
        engine.stop(grace_seconds=0)


# -- every object RPC x every outsider ------------------------------------------------------------


@dataclass(frozen=True)
class Outsider:
    """Who calls, naming which agency and tenant, on A's objects of which tenant."""

    who: str  # "b", "a" or "master"
    agency_id: str
    tenant_id: str
    objects_of: str  # A's tenant whose objects are named
    expected: grpc.StatusCode


OUTSIDERS = {
    "other-agency": Outsider("b", "", "", "t1", grpc.StatusCode.NOT_FOUND),
    "other-agency-same-tenant-name": Outsider("b", "", "t1", "t1", grpc.StatusCode.NOT_FOUND),
    "other-agency-named-explicitly": Outsider("b", "agency-b", "", "t1", grpc.StatusCode.NOT_FOUND),
    "other-agency-naming-a": Outsider("b", "agency-a", "", "t1", grpc.StatusCode.PERMISSION_DENIED),
    "other-agency-naming-a-and-tenant": Outsider(
        "b", "agency-a", "t1", "t1", grpc.StatusCode.PERMISSION_DENIED
    ),
    "master-for-other-agency": Outsider("master", "agency-b", "", "t1", grpc.StatusCode.NOT_FOUND),
    "master-for-no-agency": Outsider("master", "", "", "t1", grpc.StatusCode.NOT_FOUND),
    "other-tenant": Outsider("a", "", "t2", "t1", grpc.StatusCode.NOT_FOUND),
    "other-tenant-reverse": Outsider("a", "", "t1", "t2", grpc.StatusCode.NOT_FOUND),
    "unknown-tenant": Outsider("a", "", "t3", "t1", grpc.StatusCode.NOT_FOUND),
}


def _metadata(world: World, who: str) -> Metadata:
    return {"a": world.a.metadata, "b": world.b.metadata, "master": MASTER_AUTH}[who]


@pytest.mark.parametrize("outsider", list(OUTSIDERS))
@pytest.mark.parametrize("method", list(RPCS))
def test_outsiders_cannot_reach_a_objects(world: World, method: str, outsider: str) -> None:
    rpc = RPCS[method]
    who = OUTSIDERS[outsider]
    target = world.object_of(rpc, who.objects_of)

    def attempt() -> Any:
        return call(world.live, method, _metadata(world, who.who), who.agency_id, who.tenant_id, target)

    if rpc.filters and who.expected is grpc.StatusCode.NOT_FOUND:
        # A filter naming an object the caller cannot see matches nothing.
        assert list(attempt().conversations) == []
    else:
        with pytest.raises(grpc.RpcError) as caught:
            attempt()
        assert caught.value.code() is who.expected, caught.value.details()
        # The answer does not tell an outsider whose object it is.
        assert "agency-a" not in caught.value.details()
        assert "t1" not in caught.value.details() and "t2" not in caught.value.details()
    world.a_is_untouched()


@pytest.mark.parametrize(
    ("who", "agency_id", "tenant_id"),
    [("a", "", ""), ("a", "", CONTROL_TENANT), ("master", "agency-a", CONTROL_TENANT)],
    ids=["own-key", "own-key-with-tenant", "master-naming-a"],
)
@pytest.mark.parametrize("method", list(RPCS))
def test_the_owner_reaches_its_objects_with_the_same_requests(
    world: World, method: str, who: str, agency_id: str, tenant_id: str
) -> None:
    """The control of the matrix above: the very same requests reach the object for its owner."""
    rpc = RPCS[method]
    # A fresh session and conversation of A (in a tenant of their own): the owner's calls may change them.
    session = world.a.working(CONTROL_TENANT)
    conversation_id = world.a.inbound(session.session_id, "15550002222", "control").conversation_id
    target = session.session_id if rpc.names == "session" else conversation_id

    try:
        response = call(world.live, method, _metadata(world, who), agency_id, tenant_id, target)
    except grpc.RpcError as error:
        assert error.code() is rpc.owner_code, error.details()
    else:
        assert rpc.owner_code is grpc.StatusCode.OK
        if rpc.filters:
            assert [c.conversation_id for c in response.conversations] == [conversation_id]
        elif method == "ListMessages":
            assert len(response.messages) == 1
    world.a_is_untouched()


# -- listings -------------------------------------------------------------------------------------


def _listings(caller: Caller, world: World) -> dict[str, set[str]]:
    """Every id `caller` can list, by listing, with every filter value an outsider might try."""
    seen: dict[str, set[str]] = {}
    for tenant in ("", "t1", "t2"):
        seen[f"sessions tenant={tenant!r}"] = caller.session_ids(tenant_id=tenant)
        for status in (common_pb2.SESSION_STATUS_UNSPECIFIED, common_pb2.SESSION_STATUS_WORKING):
            seen[f"sessions tenant={tenant!r} status={status}"] = caller.session_ids(
                tenant_id=tenant, status=status
            )
        seen[f"conversations tenant={tenant!r}"] = caller.conversation_ids(tenant_id=tenant)
        for session in (world.a_t1, world.a_t2, world.b_t1):
            seen[f"conversations tenant={tenant!r} session={session.session_id}"] = caller.conversation_ids(
                tenant_id=tenant, session_id=session.session_id
            )
    return seen


def _a_ids(world: World) -> set[str]:
    return {
        world.a_t1.session_id,
        world.a_t2.session_id,
        world.a_t1_conversation,
        world.a_t2_conversation,
        *world.a_messages,
    }


@pytest.mark.parametrize("as_master", [False, True], ids=["b-key", "master-for-b"])
def test_nothing_of_a_appears_in_b_listings(world: World, as_master: bool) -> None:
    b = Caller(world.live, MASTER_AUTH, "agency-b") if as_master else world.b
    listings = _listings(b, world)
    for name, ids in listings.items():
        assert not ids & _a_ids(world), name
    # The listings work: B sees its own objects.
    assert listings["sessions tenant=''"] == {world.b_t1.session_id}
    assert listings["sessions tenant='t1'"] == {world.b_t1.session_id}
    assert listings["conversations tenant='t1'"] == {world.b_t1_conversation}
    assert listings[f"conversations tenant='' session={world.b_t1.session_id}"] == {world.b_t1_conversation}
    assert b.message_ids(world.b_t1_conversation) == world.b_messages
    assert b.message_ids(world.b_t1_conversation, tenant_id="t1") == world.b_messages


def test_nothing_of_b_appears_in_a_listings(world: World) -> None:
    b_ids = {world.b_t1.session_id, world.b_t1_conversation, *world.b_messages}
    for name, ids in _listings(world.a, world).items():
        assert not ids & b_ids, name


def test_tenant_filtered_listings_show_only_that_tenant(world: World) -> None:
    a = world.a
    t1_ids = {world.a_t1.session_id, world.a_t1_conversation, *world.a_messages} - {
        *a.message_ids(world.a_t2_conversation)
    }
    assert a.session_ids(tenant_id="t2") == {world.a_t2.session_id}
    assert a.session_ids(tenant_id="t2", status=common_pb2.SESSION_STATUS_WORKING) == {world.a_t2.session_id}
    assert a.conversation_ids(tenant_id="t2") == {world.a_t2_conversation}
    assert a.conversation_ids(tenant_id="t2", session_id=world.a_t1.session_id) == set()
    assert a.message_ids(world.a_t2_conversation, tenant_id="t2") == a.message_ids(world.a_t2_conversation)
    for ids in (
        a.session_ids(tenant_id="t2"),
        a.conversation_ids(tenant_id="t2"),
        a.message_ids(world.a_t2_conversation, tenant_id="t2"),
    ):
        assert not ids & t1_ids
    # And the other way round.
    assert a.session_ids(tenant_id="t1") == {world.a_t1.session_id}
    assert a.conversation_ids(tenant_id="t1") == {world.a_t1_conversation}
    assert a.conversation_ids(tenant_id="t1", session_id=world.a_t2.session_id) == set()
    # Unfiltered, A sees both tenants.
    assert {world.a_t1.session_id, world.a_t2.session_id} <= a.session_ids()
    assert {world.a_t1_conversation, world.a_t2_conversation} <= a.conversation_ids()


def test_page_tokens_do_not_cross_agencies(world: World) -> None:
    """A page token is only a position: B resuming A's listing still sees only B's objects."""
    a, b = world.a, world.b
    first = a.stub.ListSessions(sessions_pb2.ListSessionsRequest(page_size=1), metadata=a.metadata)
    assert first.next_page_token
    resumed = b.stub.ListSessions(
        sessions_pb2.ListSessionsRequest(page_size=50, page_token=first.next_page_token), metadata=b.metadata
    )
    assert {s.agency_id for s in resumed.sessions} <= {"agency-b"}
    first = a.stub.ListConversations(sessions_pb2.ListConversationsRequest(page_size=1), metadata=a.metadata)
    assert first.next_page_token
    resumed_conversations = b.stub.ListConversations(
        sessions_pb2.ListConversationsRequest(page_size=50, page_token=first.next_page_token),
        metadata=b.metadata,
    )
    assert {c.agency_id for c in resumed_conversations.conversations} <= {"agency-b"}
