"""The provider ingress pipeline over REST and gRPC, with the sandbox provider's signature.

Webhooks are built and signed here as the sandbox signs its own (`x-sandbox-signature`, the hex
HMAC-SHA256 under the engine's derived key) and posted from outside: to `POST /v1/webhooks/sandbox`
over REST, and to `WebhookService.ReceiveProviderWebhook` with the signature as metadata over gRPC.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from sqlalchemy import func, select

from engine.ids import new_id
from engine.rpc.metadata import HTTP_CODE_KEY
from engine.sessions.models import Conversation, PendingMessageAck, StoredMessage
from engine.sessions.providers.sandbox import SIGNATURE_HEADER, SandboxProvider
from engine.webhooks.models import ProviderEventReceipt, UnroutableProviderEvent
from tests.support.constants import BACKENDS
from tests.support.live import LiveEngine
from tests.support.rpc import register
from tests.support.waiting import eventually
from workflow_engine.v1 import webhook_pb2, webhook_pb2_grpc

AGENCY = "agency_ingress"
TENANT = "tenant_1"
CUSTOMER = "15557654321@c.us"
DEADLINE_SECONDS = 10.0
#: Waits here are for work that may take longer than the default under load.
wait_for = functools.partial(eventually, timeout=DEADLINE_SECONDS)
THREADS = 20
TRANSPORTS = ["rest", "grpc"]
_event_numbers = itertools.count(1)


@dataclass
class Answer:
    """What the ingress answered, whichever the transport: HTTP status and the decoded counts."""

    status: int
    body: dict[str, Any]


@dataclass
class Ingress:
    """A live engine with one WORKING sandbox session, and ways to post webhooks to it."""

    live: LiveEngine
    #: The REST API, with the agency's dashboard key.
    http: httpx.Client
    session_id: str
    #: Posts webhooks: no API key (a dashboard key is not a provider's credential).
    hooks: httpx.Client

    @property
    def sandbox(self) -> SandboxProvider:
        provider = self.live.engine.providers["sandbox"]
        assert isinstance(provider, SandboxProvider)
        return provider

    def signature(self, body: bytes) -> str:
        return self.sandbox.sign(body)

    def post(
        self,
        transport: str,
        body: bytes,
        *,
        signature: str | None = "valid",
        provider: str = "sandbox",
        http: httpx.Client | None = None,
    ) -> Answer:
        """POST `body` (signed unless `signature` is None or another value) over `transport`."""
        sent = self.signature(body) if signature == "valid" else signature
        if transport == "rest":
            headers = {"Content-Type": "application/json"}
            if sent is not None:
                headers[SIGNATURE_HEADER] = sent
            response = (http or self.hooks).post(f"/v1/webhooks/{provider}", content=body, headers=headers)
            return Answer(response.status_code, response.json())
        metadata = () if sent is None else ((SIGNATURE_HEADER, sent),)
        request = webhook_pb2.ReceiveProviderWebhookRequest(
            provider=provider, body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
        )
        stub = webhook_pb2_grpc.WebhookServiceStub(self.live.channel)
        try:
            reply, call = stub.ReceiveProviderWebhook.with_call(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return Answer(_HTTP_OF[error.code()], {"code": error.code().name, "message": error.details()})
        status = int(dict(call.initial_metadata() or ()).get(HTTP_CODE_KEY, "200"))
        return Answer(status, {"accepted": reply.accepted, "unroutable": reply.unroutable})


_HTTP_OF = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.UNKNOWN: 500,
}


@pytest.fixture(params=BACKENDS)
def ingress(request: pytest.FixtureRequest, start_engine: Callable[..., LiveEngine]) -> Iterator[Ingress]:
    live = start_engine(request.param, http=True)
    api_key = register(live.channel, AGENCY).api_key
    with (
        httpx.Client(base_url=live.base_url, headers={"X-API-Key": api_key}, timeout=10) as http,
        httpx.Client(base_url=live.base_url, timeout=10) as hooks,
    ):
        created = http.post("/api/v1/sessions", json={"agencyId": AGENCY, "tenantId": TENANT})
        assert created.status_code == 200, created.text
        session_id = created.json()["session"]["sessionId"]
        assert http.post(f"/api/v1/sessions/{session_id}/start", json={"agencyId": AGENCY}).status_code == 200
        wait_for(
            lambda: http.get(f"/api/v1/sessions/{session_id}", params={"agencyId": AGENCY}).json(),
            lambda body: body["session"]["status"] == "SESSION_STATUS_WORKING",
            "the sandbox session to pair",
        )
        yield Ingress(live, http, session_id, hooks)


# -- helpers --------------------------------------------------------------------------------------


def event(session: str, kind: str, payload: dict[str, Any], event_id: str | None = None) -> bytes:
    """A sandbox webhook body (the format SandboxProvider.parse_events reads)."""
    document = {
        "id": event_id or f"test_evt_{next(_event_numbers)}_{time.monotonic_ns()}",
        "event": kind,
        "session": session,
        "payload": payload,
    }
    return json.dumps(document).encode()


def inbound(
    session: str, message_id: str, text: str = "hello", sender: str = CUSTOMER, event_id: str | None = None
) -> bytes:
    payload = {"id": message_id, "from": sender, "body": text, "timestamp": int(time.time())}
    return event(session, "message", payload, event_id)


def ack(session: str, message_id: str, status: str, event_id: str | None = None) -> bytes:
    return event(session, "message.ack", {"id": message_id, "status": status}, event_id)


def counts(s: Ingress) -> dict[str, int]:
    """Row counts of every table the ingress writes."""
    with s.live.engine.database.reader() as tx:
        return {
            model.__tablename__: int(tx.scalar(select(func.count()).select_from(model)) or 0)
            for model in (ProviderEventReceipt, UnroutableProviderEvent, Conversation, StoredMessage)
        }


def stored_messages(s: Ingress, provider_message_id: str | None = None) -> list[StoredMessage]:
    query = select(StoredMessage).where(StoredMessage.session_id == s.session_id)
    if provider_message_id is not None:
        query = query.where(StoredMessage.provider_message_id == provider_message_id)
    with s.live.engine.database.reader() as tx:
        return list(tx.scalars(query))


def listed_messages(s: Ingress) -> list[dict[str, Any]]:
    """Every message of the session, as the REST API lists them."""
    body = s.http.get("/api/v1/conversations", params={"agencyId": AGENCY, "sessionId": s.session_id}).json()
    found: list[dict[str, Any]] = []
    for conversation in body.get("conversations", []):
        page = s.http.get(
            f"/api/v1/conversations/{conversation['conversationId']}/messages",
            params={"agencyId": AGENCY, "pageSize": 100},
        ).json()
        found.extend(page.get("messages", []))
    return found


def metric(s: Ingress, outcome: str) -> float:
    text = s.hooks.get("/metrics").text
    pattern = rf'^engine_provider_events_total\{{outcome="{outcome}",provider="sandbox"\}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else 0.0


def outbound_message(s: Ingress, provider_message_id: str) -> str:
    """Store a PENDING outbound message the provider knows as `provider_message_id` (no sandbox acks).

    Sent through the API, the sandbox would ack the message by itself; stored here, only the acks
    a test posts reach it.
    """
    now = datetime.now(UTC)
    message_id = new_id("msg")
    with s.live.engine.database.transaction() as tx:
        conversation = tx.scalars(
            select(Conversation).where(Conversation.session_id == s.session_id, Conversation.peer == CUSTOMER)
        ).one_or_none()
        if conversation is None:
            conversation = Conversation(
                conversation_id=new_id("cnv"),
                session_id=s.session_id,
                agency_id=AGENCY,
                tenant_id=TENANT,
                peer=CUSTOMER,
                last_message_at=now,
                created_at=now,
            )
            tx.add(conversation)
            tx.flush()
        tx.add(
            StoredMessage(
                message_id=message_id,
                conversation_id=conversation.conversation_id,
                session_id=s.session_id,
                agency_id=AGENCY,
                tenant_id=TENANT,
                direction="OUTBOUND",
                sender="15550000000@c.us",
                recipient=CUSTOMER,
                text="outbound",
                status="PENDING",
                provider_message_id=provider_message_id,
                created_at=now,
                updated_at=now,
            )
        )
    return message_id


def status_of(s: Ingress, provider_message_id: str) -> str:
    (message,) = stored_messages(s, provider_message_id)
    return message.status


def all_at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in `count` threads released together; return the results (re-raising errors)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=DEADLINE_SECONDS)
            results[index] = work(index)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a poster is stuck"
    if errors:
        raise errors[0]
    return results


# -- the pipeline, over both transports -----------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_signed_inbound_message_is_stored_and_listed(ingress: Ingress, transport: str) -> None:
    s = ingress
    answer = s.post(transport, inbound(s.session_id, "sbx_in_1", "Hello from outside"))

    assert answer == Answer(200, {"accepted": 1, "unroutable": 0})
    (message,) = listed_messages(s)
    assert message["direction"] == "MESSAGE_DIRECTION_INBOUND"
    assert message["status"] == "MESSAGE_STATUS_RECEIVED"
    assert message["from"] == CUSTOMER
    assert message["text"] == "Hello from outside"
    assert message["providerMessageId"] == "sbx_in_1"
    assert message["sessionId"] == s.session_id


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_or_missing_signature_is_401_and_stores_nothing(ingress: Ingress, transport: str) -> None:
    s = ingress
    before = counts(s)
    body = inbound(s.session_id, "sbx_forged")
    other_body = inbound(s.session_id, "sbx_other")

    attempts = {
        "missing": s.post(transport, body, signature=None),
        "empty": s.post(transport, body, signature=""),
        "garbage": s.post(transport, body, signature="0" * 64),
        "of other bytes": s.post(transport, body, signature=s.signature(other_body)),
        "upper-cased": s.post(transport, body, signature=s.signature(body).upper()),
        "of the body plus a byte": s.post(transport, body, signature=s.signature(body + b" ")),
    }

    assert {name: answer.status for name, answer in attempts.items()} == dict.fromkeys(attempts, 401)
    assert counts(s) == before
    # The same body, correctly signed, is stored: the refusals were about the signature alone.
    assert s.post(transport, body).status == 200
    assert counts(s)["messages"] == before["messages"] + 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_provider_is_401_even_with_a_valid_sandbox_signature(
    ingress: Ingress, transport: str
) -> None:
    s = ingress
    before = counts(s)
    body = inbound(s.session_id, "sbx_elsewhere")

    for provider in ("nope", "waha", "SANDBOX"):
        assert s.post(transport, body, provider=provider).status == 401, provider
    assert counts(s) == before


MALFORMED = {
    "not json": b"{not json",
    "not utf-8": b'{"id": "\xff"}',
    "a list": b"[]",
    "a string": b'"message"',
    "id not a string": json.dumps({"id": 1, "event": "message", "session": "s", "payload": {}}).encode(),
    "payload not an object": json.dumps(
        {"id": "e", "event": "message", "session": "s", "payload": []}
    ).encode(),
    "message without from": json.dumps(
        {"id": "e", "event": "message", "session": "s", "payload": {"id": "m", "body": "x"}}
    ).encode(),
    "unknown event": json.dumps({"id": "e", "event": "typing", "session": "s", "payload": {}}).encode(),
    "unknown ack status": json.dumps(
        {"id": "e", "event": "message.ack", "session": "s", "payload": {"id": "m", "status": "SEEN"}}
    ).encode(),
    "empty": b"",
}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_bodies_with_a_valid_signature_are_400_and_store_nothing(
    start_engine: Callable[..., LiveEngine], transport: str
) -> None:
    live = start_engine("sqlite", http=True)
    with httpx.Client(base_url=live.base_url, timeout=10) as http:
        s = Ingress(live, http, session_id="", hooks=http)
        answers = {name: s.post(transport, body).status for name, body in MALFORMED.items()}
        assert answers == dict.fromkeys(MALFORMED, 400)
        assert counts(s) == dict.fromkeys(counts(s), 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_body_for_a_known_session_is_400_and_stores_nothing(
    ingress: Ingress, transport: str
) -> None:
    s = ingress
    before = counts(s)
    body = event(s.session_id, "message", {"id": "sbx_no_sender", "body": "hi"})
    assert s.post(transport, body).status == 400
    assert counts(s) == before


def test_duplicate_event_is_stored_once_across_transports(ingress: Ingress) -> None:
    s = ingress
    body = inbound(s.session_id, "sbx_dup", "once", event_id="evt_dup")
    duplicates_before = metric(s, "duplicate")

    assert s.post("rest", body) == Answer(200, {"accepted": 1, "unroutable": 0})
    listed = listed_messages(s)
    stored = counts(s)
    assert s.post("rest", body) == Answer(200, {"accepted": 1, "unroutable": 0})
    assert s.post("grpc", body) == Answer(200, {"accepted": 1, "unroutable": 0})
    # The same provider message under another event id is the same message too.
    again = inbound(s.session_id, "sbx_dup", "once", event_id="evt_dup_redelivered")
    assert s.post("grpc", again) == Answer(200, {"accepted": 1, "unroutable": 0})

    assert listed_messages(s) == listed
    assert len(listed) == 1
    after = counts(s)
    assert after["messages"] == stored["messages"] == 1
    assert after["conversations"] == stored["conversations"] == 1
    # Only the re-stamped redelivery adds a receipt; the exact repeats add nothing.
    assert after["provider_event_receipts"] == stored["provider_event_receipts"] + 1
    assert metric(s, "duplicate") == duplicates_before + 3


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_event_for_an_unknown_session_is_202_unroutable(ingress: Ingress, transport: str) -> None:
    s = ingress
    unroutable_before = metric(s, "unroutable")
    body = ack("ses_nobody_knows", "sbx_x", "READ", event_id=f"evt_lost_{transport}")

    answer = s.post(transport, body)

    assert answer == Answer(202, {"accepted": 0, "unroutable": 1})
    with s.live.engine.database.reader() as tx:
        (row,) = tx.scalars(select(UnroutableProviderEvent)).all()
    assert (row.provider, row.provider_session, row.event_type, row.event_id) == (
        "sandbox",
        "ses_nobody_knows",
        "message.ack",
        f"evt_lost_{transport}",
    )
    assert metric(s, "unroutable") == unroutable_before + 1
    # A redelivery of it is recognised: a duplicate, accepted, no second row.
    assert s.post(transport, body) == Answer(200, {"accepted": 1, "unroutable": 0})
    assert counts(s)["unroutable_provider_events"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_ack_for_an_unknown_message_is_accepted_and_kept_for_later(
    ingress: Ingress, transport: str
) -> None:
    s = ingress
    deferred_before = metric(s, "deferred")
    before = counts(s)

    answer = s.post(transport, ack(s.session_id, "sbx_never_sent", "DELIVERED"))

    assert answer == Answer(200, {"accepted": 1, "unroutable": 0})
    assert metric(s, "deferred") == deferred_before + 1
    after = counts(s)
    assert after["messages"] == before["messages"]
    assert after["provider_event_receipts"] == before["provider_event_receipts"] + 1
    with s.live.engine.database.reader() as tx:
        pending = tx.get(PendingMessageAck, (s.session_id, "sbx_never_sent"))
        assert pending is not None and pending.status == "DELIVERED"


def test_a_deleted_session_no_longer_routes(ingress: Ingress) -> None:
    s = ingress
    deleted = s.http.delete(f"/api/v1/sessions/{s.session_id}", params={"agencyId": AGENCY})
    assert deleted.status_code == 200, deleted.text
    assert s.post("rest", inbound(s.session_id, "sbx_late")) == Answer(202, {"accepted": 0, "unroutable": 1})
    assert stored_messages(s) == []


# -- concurrency ----------------------------------------------------------------------------------


def posters(s: Ingress, count: int) -> list[httpx.Client]:
    """One REST client per thread, connected before the start so the posts really overlap."""
    clients = [httpx.Client(base_url=s.live.base_url, timeout=30) for _ in range(count)]
    for client in clients:
        assert client.get("/healthz").status_code == 200
    return clients


def test_the_same_event_from_many_threads_at_once_is_stored_once(ingress: Ingress) -> None:
    s = ingress
    body = inbound(s.session_id, "sbx_race", "raced", event_id="evt_race")
    clients = posters(s, THREADS)
    try:
        # Half the threads post over REST, half over gRPC.
        answers = all_at_once(THREADS, lambda i: s.post("rest" if i % 2 else "grpc", body, http=clients[i]))
    finally:
        for client in clients:
            client.close()

    assert answers == [Answer(200, {"accepted": 1, "unroutable": 0})] * THREADS
    (message,) = stored_messages(s)
    assert message.provider_message_id == "sbx_race"
    with s.live.engine.database.reader() as tx:
        (conversation,) = tx.scalars(select(Conversation).where(Conversation.session_id == s.session_id))
        assert conversation.message_count == 1
        receipts = tx.scalar(
            select(func.count())
            .select_from(ProviderEventReceipt)
            .where(ProviderEventReceipt.event_id == "evt_race")
        )
    assert receipts == 1


def test_one_message_under_many_event_ids_at_once_is_stored_once(ingress: Ingress) -> None:
    s = ingress
    bodies = [inbound(s.session_id, "sbx_restamped", "raced", event_id=f"evt_re_{i}") for i in range(THREADS)]
    clients = posters(s, THREADS)
    try:
        answers = all_at_once(THREADS, lambda i: s.post("rest", bodies[i], http=clients[i]))
    finally:
        for client in clients:
            client.close()

    assert answers == [Answer(200, {"accepted": 1, "unroutable": 0})] * THREADS
    assert len(stored_messages(s, "sbx_restamped")) == 1
    with s.live.engine.database.reader() as tx:
        (conversation,) = tx.scalars(select(Conversation).where(Conversation.session_id == s.session_id))
        assert conversation.message_count == 1


def test_first_messages_from_one_peer_at_once_share_one_conversation(ingress: Ingress) -> None:
    s = ingress
    bodies = [inbound(s.session_id, f"sbx_burst_{i}", f"part {i}") for i in range(THREADS)]
    clients = posters(s, THREADS)
    try:
        answers = all_at_once(THREADS, lambda i: s.post("rest", bodies[i], http=clients[i]))
    finally:
        for client in clients:
            client.close()

    assert answers == [Answer(200, {"accepted": 1, "unroutable": 0})] * THREADS
    assert len(stored_messages(s)) == THREADS
    with s.live.engine.database.reader() as tx:
        (conversation,) = tx.scalars(select(Conversation).where(Conversation.session_id == s.session_id))
        assert conversation.message_count == THREADS


# -- acks out of order ----------------------------------------------------------------------------

_RANK = {"PENDING": 0, "SENT": 1, "DELIVERED": 2, "READ": 3}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_late_acks_never_move_a_message_backwards(ingress: Ingress, transport: str) -> None:
    s = ingress
    outbound_message(s, "sbx_out_read")
    outbound_message(s, "sbx_out_delivered")

    assert s.post(transport, ack(s.session_id, "sbx_out_read", "READ")).status == 200
    assert status_of(s, "sbx_out_read") == "READ"
    for late in ("DELIVERED", "SENT", "PENDING", "FAILED"):
        assert s.post(transport, ack(s.session_id, "sbx_out_read", late)) == Answer(
            200, {"accepted": 1, "unroutable": 0}
        )
        assert status_of(s, "sbx_out_read") == "READ", late

    assert s.post(transport, ack(s.session_id, "sbx_out_delivered", "DELIVERED")).status == 200
    assert s.post(transport, ack(s.session_id, "sbx_out_delivered", "SENT")).status == 200
    assert status_of(s, "sbx_out_delivered") == "DELIVERED"
    assert s.post(transport, ack(s.session_id, "sbx_out_delivered", "READ")).status == 200
    assert status_of(s, "sbx_out_delivered") == "READ"
    statuses = {m["providerMessageId"]: m["status"] for m in listed_messages(s)}
    assert statuses == {"sbx_out_read": "MESSAGE_STATUS_READ", "sbx_out_delivered": "MESSAGE_STATUS_READ"}


def test_acks_racing_in_any_order_only_move_messages_forward(ingress: Ingress) -> None:
    s = ingress
    ids = [f"sbx_out_race_{n}" for n in range(5)]
    for provider_message_id in ids:
        outbound_message(s, provider_message_id)
    # Threads start newest-status first, so the late acks tend to land last.
    bodies = [ack(s.session_id, m, status) for status in ("READ", "DELIVERED", "SENT") for m in ids]

    # A reader samples every status while the acks land: no sample may be behind an earlier one.
    seen: dict[str, list[str]] = {m: [] for m in ids}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for message in stored_messages(s):
                if message.provider_message_id in seen:
                    seen[message.provider_message_id].append(message.status)

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = posters(s, len(bodies))
    try:
        answers = all_at_once(len(bodies), lambda i: s.post("rest", bodies[i], http=clients[i]))
    finally:
        stop.set()
        sampler.join(timeout=30)
        for client in clients:
            client.close()

    assert answers == [Answer(200, {"accepted": 1, "unroutable": 0})] * len(bodies)
    assert {m: status_of(s, m) for m in ids} == dict.fromkeys(ids, "READ")
    for provider_message_id, samples in seen.items():
        ranks = [_RANK[status] for status in samples]
        assert ranks == sorted(ranks), f"{provider_message_id} went backwards: {samples}"
