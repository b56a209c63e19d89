"""WAHA sessions end to end: the engine's REST API driving the fake WAHA, and WAHA's webhooks coming back.

Every test runs an engine (REST gateway included) whose `waha` provider points at `FakeWaha`; the
fake posts its signed webhooks to the engine's real ingress route, so each step crosses HTTP both
ways: API call → engine → WAHA API, then WAHA webhook → `/v1/webhooks/waha` → database → API read.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import func, select

from engine.config import SecretStr
from engine.sessions.models import Conversation, SessionBinding, StoredMessage
from engine.webhooks.models import ProviderEventReceipt, UnroutableProviderEvent
from tests.support.constants import BACKENDS
from tests.support.fake_waha import DEFAULT_API_KEY, FakeWaha
from tests.support.live import LiveEngine
from tests.support.rpc import api_key_auth, register
from tests.support.waiting import eventually
from workflow_engine.v1 import sessions_pb2, sessions_pb2_grpc

WAHA_SECRET = "waha-hmac-secret-0123456789abcdefghijklmnop"
AGENCY = "agency_waha"
TENANT = "tenant_1"
CUSTOMER = "15557654321@c.us"
DEADLINE_SECONDS = 10.0
#: Waits here are for work that may take longer than the default under load.
wait_for = functools.partial(eventually, timeout=DEADLINE_SECONDS)


@dataclass
class Setup:
    """An engine wired to a fake WAHA, one registered agency, a REST client with its key."""

    live: LiveEngine
    fake: FakeWaha
    http: httpx.Client
    api_key: str
    #: Cleared while `webhooks_after()` holds WAHA's webhooks back.
    gate: threading.Event = field(default_factory=threading.Event)

    @property
    def ingress_url(self) -> str:
        return f"{self.live.base_url}/v1/webhooks/waha"

    @contextmanager
    def webhooks_after(self) -> Iterator[None]:
        """Hold WAHA's webhooks at the ingress until the block ends, then wait until they are recorded.

        WAHA reports an action's effect by webhook at about the time it answers the API call;
        this pins the order "the engine has the answer first". The reverse order is covered by
        the tests named `..._when_waha_reports_first`.
        """
        self.gate.clear()
        try:
            yield
        finally:
            self.gate.set()
            self.fake.wait_deliveries()


@pytest.fixture
def fake() -> Iterator[FakeWaha]:
    with FakeWaha() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, start_engine: Callable[..., LiveEngine], fake: FakeWaha
) -> Iterator[Setup]:
    live = start_engine(
        request.param,
        http=True,
        waha_url=fake.url,
        waha_api_key=SecretStr(DEFAULT_API_KEY),
        waha_webhook_secret=SecretStr(WAHA_SECRET),
    )
    api_key = register(live.channel, AGENCY).api_key
    gate = threading.Event()
    gate.set()
    ingress = live.engine.ingress
    record = ingress.record

    def gated_record(provider: str, event: Any) -> Any:
        assert gate.wait(DEADLINE_SECONDS), "webhooks held for too long"
        return record(provider, event)

    ingress.record = gated_record  # type: ignore[method-assign]
    with httpx.Client(base_url=live.base_url, headers={"X-API-Key": api_key}, timeout=10) as http:
        yield Setup(live, fake, http, api_key, gate)


# -- helpers --------------------------------------------------------------------------------------


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def create_session(s: Setup, **fields: Any) -> dict[str, Any]:
    body = {"agencyId": AGENCY, "tenantId": TENANT, "provider": "waha", **fields}
    session: dict[str, Any] = ok(s.http.post("/api/v1/sessions", json=body))["session"]
    return session


def get_session(s: Setup, session_id: str) -> dict[str, Any]:
    session: dict[str, Any] = ok(s.http.get(f"/api/v1/sessions/{session_id}", params={"agencyId": AGENCY}))[
        "session"
    ]
    return session


def action(s: Setup, session_id: str, verb: str) -> httpx.Response:
    return s.http.post(f"/api/v1/sessions/{session_id}/{verb}", json={"agencyId": AGENCY})


def wait_status(s: Setup, session_id: str, status: str) -> dict[str, Any]:
    session: dict[str, Any] = wait_for(
        lambda: get_session(s, session_id),
        lambda value: value["status"] == f"SESSION_STATUS_{status}",
        f"session {session_id} to become {status}",
    )
    return session


def conversations(s: Setup, session_id: str) -> list[dict[str, Any]]:
    body = ok(s.http.get("/api/v1/conversations", params={"agencyId": AGENCY, "sessionId": session_id}))
    found: list[dict[str, Any]] = body.get("conversations", [])
    return found


def messages(s: Setup, conversation_id: str) -> list[dict[str, Any]]:
    body = ok(s.http.get(f"/api/v1/conversations/{conversation_id}/messages", params={"agencyId": AGENCY}))
    found: list[dict[str, Any]] = body.get("messages", [])
    return found


def message_status(s: Setup, conversation_id: str, message_id: str) -> str:
    (found,) = [m for m in messages(s, conversation_id) if m["messageId"] == message_id]
    return str(found["status"])


def count(s: Setup, model: type[Any]) -> int:
    with s.live.engine.database.reader() as tx:
        return int(tx.scalar(select(func.count()).select_from(model)) or 0)


def stored_counts(s: Setup) -> dict[str, int]:
    """Row counts of every table the ingress writes."""
    return {
        model.__tablename__: count(s, model)
        for model in (ProviderEventReceipt, UnroutableProviderEvent, Conversation, StoredMessage)
    }


def sign(body: bytes, key: str = WAHA_SECRET) -> dict[str, str]:
    """The headers WAHA sends with a webhook signed under `key`."""
    return {
        "Content-Type": "application/json",
        "X-Webhook-Hmac": hmac.new(key.encode(), body, hashlib.sha512).hexdigest(),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }


def waha_event(session: str, event: str, payload: dict[str, Any], event_id: str | None = None) -> bytes:
    envelope = {
        "id": event_id or f"evt_{time.monotonic_ns()}",
        "timestamp": int(time.time() * 1000),
        "event": event,
        "session": session,
        "payload": payload,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def inbound_event(session: str, message_id: str, text: str = "hello", event_id: str | None = None) -> bytes:
    payload = {
        "id": message_id,
        "timestamp": int(time.time()),
        "from": CUSTOMER,
        "fromMe": False,
        "body": text,
    }
    return waha_event(session, "message", payload, event_id)


def working_session(s: Setup) -> dict[str, Any]:
    """A WAHA session created, started and paired (WORKING)."""
    session = create_session(s)
    ok(action(s, session["sessionId"], "start"))
    wait_status(s, session["sessionId"], "SCAN_QR_CODE")
    s.fake.pair(session["sessionId"])
    return wait_status(s, session["sessionId"], "WORKING")


def provider_events_metric(s: Setup, outcome: str) -> float:
    text = httpx.get(f"{s.live.base_url}/metrics", timeout=10).text
    match = re.search(
        rf'^engine_provider_events_total\{{outcome="{outcome}",provider="waha"\}} (\S+)$', text, re.M
    )
    return float(match.group(1)) if match else 0.0


# -- the whole lifecycle --------------------------------------------------------------------------


def test_session_lifecycle_through_waha(setup: Setup) -> None:
    s, fake = setup, setup.fake

    # Create: the engine asks WAHA for a stopped session whose webhook is our ingress, signed.
    session = create_session(s, name="Front desk", metadata={"team": "sales"})
    session_id = session["sessionId"]
    assert session["provider"] == "waha"
    assert session["status"] == "SESSION_STATUS_STOPPED"
    (created,) = [r for r in fake.requests if (r.method, r.path) == ("POST", "/api/sessions")]
    assert created.api_key == DEFAULT_API_KEY
    assert created.json["start"] is False
    provider_session = created.json["name"]
    assert provider_session == session_id
    (hook,) = created.json["config"]["webhooks"]
    assert hook["url"] == s.ingress_url
    assert hook["hmac"] == {"key": WAHA_SECRET}
    assert set(hook["events"]) == {"message", "message.ack", "session.status"}
    assert created.json["config"]["metadata"] == {
        "team": "sales",
        "agencyId": AGENCY,
        "tenantId": TENANT,
        "sessionId": session_id,
    }

    # Start: WAHA reports STARTING then SCAN_QR_CODE through the ingress.
    started = ok(action(s, session_id, "start"))["session"]
    # The engine answers once STARTING is committed, before WAHA reports anything.
    assert started["status"] == "SESSION_STATUS_STARTING"
    wait_status(s, session_id, "SCAN_QR_CODE")
    statuses = [e["payload"]["status"] for e in fake.events(provider_session, "session.status")]
    assert statuses == ["STARTING", "SCAN_QR_CODE"]
    assert {d.status for d in fake.wait_deliveries()} == {200}

    # The QR code is WAHA's raw value, with a PNG of it.
    qr = ok(s.http.get(f"/api/v1/sessions/{session_id}/qr", params={"agencyId": AGENCY}))
    assert re.fullmatch(rf"2@fake-qr-{re.escape(provider_session)}-1,[0-9a-f]{{16}}", qr["value"])
    assert base64.b64decode(qr["png"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert [r.query for r in fake.requests if r.path == f"/api/{provider_session}/auth/qr"] == [
        {"format": "raw"}
    ]

    # Pairing: WORKING with the account WAHA reports.
    fake.pair(provider_session, phone="15550001111")
    working = wait_status(s, session_id, "WORKING")
    assert working["accountId"] == "15550001111"

    # Send: WAHA's sendText, and the message keeps WAHA's id for the acks to come.
    sent = ok(
        s.http.post(
            f"/api/v1/sessions/{session_id}/messages",
            json={"agencyId": AGENCY, "to": "+1 555 765 4321", "text": "Hi there"},
        )
    )["message"]
    (waha_message,) = fake.session(provider_session).sent
    assert waha_message["chatId"] == CUSTOMER
    assert waha_message["text"] == "Hi there"
    assert sent["providerMessageId"] == waha_message["id"]
    assert sent["direction"] == "MESSAGE_DIRECTION_OUTBOUND"
    assert sent["status"] == "MESSAGE_STATUS_PENDING"
    conversation_id = sent["conversationId"]

    # Acks: DELIVERED, then READ, as seen over the API.
    fake.ack(provider_session, waha_message["id"], 2)
    wait_for(
        lambda: message_status(s, conversation_id, sent["messageId"]),
        lambda status: status == "MESSAGE_STATUS_DELIVERED",
        "the message to be DELIVERED",
    )
    fake.ack(provider_session, waha_message["id"], 3)
    wait_for(
        lambda: message_status(s, conversation_id, sent["messageId"]),
        lambda status: status == "MESSAGE_STATUS_READ",
        "the message to be READ",
    )

    # Inbound: the customer answers; it lands in the same conversation as an INBOUND message.
    incoming = fake.inbound(provider_session, CUSTOMER, "Thanks!")
    listed = wait_for(
        lambda: messages(s, conversation_id),
        lambda found: any(m["direction"] == "MESSAGE_DIRECTION_INBOUND" for m in found),
        "the inbound message to be listed",
    )
    (received,) = [m for m in listed if m["direction"] == "MESSAGE_DIRECTION_INBOUND"]
    assert received["text"] == "Thanks!"
    assert received["from"] == CUSTOMER
    assert received["providerMessageId"] == incoming["id"]
    assert received["status"] == "MESSAGE_STATUS_RECEIVED"
    (conversation,) = conversations(s, session_id)
    assert conversation["conversationId"] == conversation_id
    assert conversation["peer"] == CUSTOMER
    assert conversation["messageCount"] == "2"  # int64: a string in proto3 JSON
    assert conversation["lastMessageText"] == "Thanks!"

    # A message from someone new starts a second conversation.
    fake.inbound(provider_session, "15559990000@c.us", "Who is this?")
    wait_for(lambda: len(conversations(s, session_id)), lambda n: n == 2, "a second conversation")

    # Stop, start again (already paired: straight to WORKING), log out, delete.
    with s.webhooks_after():
        assert ok(action(s, session_id, "stop"))["session"]["status"] == "SESSION_STATUS_STOPPED"
    assert get_session(s, session_id)["status"] == "SESSION_STATUS_STOPPED"
    assert ("POST", f"/api/sessions/{provider_session}/stop") in [(r.method, r.path) for r in fake.requests]
    ok(action(s, session_id, "start"))
    assert wait_status(s, session_id, "WORKING")["accountId"] == "15550001111"

    with s.webhooks_after():
        logged_out = ok(action(s, session_id, "logout"))["session"]
    assert logged_out["status"] == "SESSION_STATUS_STOPPED"
    assert logged_out.get("accountId", "") == ""
    assert ("POST", f"/api/sessions/{provider_session}/logout") in [(r.method, r.path) for r in fake.requests]
    assert fake.session(provider_session).paired is False

    ok(s.http.delete(f"/api/v1/sessions/{session_id}", params={"agencyId": AGENCY}))
    assert ("DELETE", f"/api/sessions/{provider_session}") in [(r.method, r.path) for r in fake.requests]
    assert provider_session not in fake.sessions
    assert s.http.get(f"/api/v1/sessions/{session_id}", params={"agencyId": AGENCY}).status_code == 404
    # Every webhook the fake sent was accepted by the ingress.
    assert {d.status for d in fake.wait_deliveries()} == {200}


# -- WAHA failing ---------------------------------------------------------------------------------


def assert_unavailable(response: httpx.Response, s: Setup) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "waha" in body["message"]
    for secret in (DEFAULT_API_KEY, WAHA_SECRET):
        assert secret not in response.text


def test_failed_create_leaves_no_session(setup: Setup) -> None:
    s = setup
    s.fake.fail_next(500)
    response = s.http.post(
        "/api/v1/sessions", json={"agencyId": AGENCY, "tenantId": TENANT, "provider": "waha"}
    )
    assert_unavailable(response, s)
    assert ok(s.http.get("/api/v1/sessions", params={"agencyId": AGENCY})).get("sessions", []) == []
    assert count(s, SessionBinding) == 0
    # The next create works: nothing was left behind at either end.
    create_session(s)
    assert count(s, SessionBinding) == 1


def test_failed_actions_are_unavailable_and_change_nothing_half_way(setup: Setup) -> None:
    s = setup
    session = working_session(s)
    session_id = session["sessionId"]

    # A failed send keeps the message, marked FAILED, with no WAHA id.
    s.fake.fail_next(500)
    response = s.http.post(
        f"/api/v1/sessions/{session_id}/messages",
        json={"agencyId": AGENCY, "to": CUSTOMER, "text": "lost"},
    )
    assert_unavailable(response, s)
    (conversation,) = conversations(s, session_id)
    (failed,) = messages(s, conversation["conversationId"])
    assert failed["status"] == "MESSAGE_STATUS_FAILED"
    assert failed.get("providerMessageId", "") == ""

    # A failed stop, logout or delete leaves the session as it was.
    for verb, call in (
        ("stop", lambda: action(s, session_id, "stop")),
        ("logout", lambda: action(s, session_id, "logout")),
        ("delete", lambda: s.http.delete(f"/api/v1/sessions/{session_id}", params={"agencyId": AGENCY})),
    ):
        s.fake.fail_next(500)
        assert_unavailable(call(), s)
        after = get_session(s, session_id)
        assert after["status"] == "SESSION_STATUS_WORKING", verb
        assert after["accountId"] == "15550001111", verb

    # Over gRPC the same failure is UNAVAILABLE, without secrets.
    s.fake.fail_next(502)
    stub = sessions_pb2_grpc.SessionsServiceStub(s.live.channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.StopSession(
            sessions_pb2.StopSessionRequest(agency_id=AGENCY, session_id=session_id),
            metadata=api_key_auth(s.api_key),
        )
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert DEFAULT_API_KEY not in (caught.value.details() or "")
    assert WAHA_SECRET not in (caught.value.details() or "")

    # A failed start marks the session FAILED (the provider did not start it); it can start again.
    with s.webhooks_after():
        ok(action(s, session_id, "stop"))
    s.fake.fail_next(500)
    assert_unavailable(action(s, session_id, "start"), s)
    assert get_session(s, session_id)["status"] == "SESSION_STATUS_FAILED"
    ok(action(s, session_id, "start"))
    wait_status(s, session_id, "WORKING")


def test_unreachable_waha_is_unavailable_without_its_address_or_key(
    start_engine: Callable[..., LiveEngine],
) -> None:
    # A port nothing listens on (bound, then closed).
    with FakeWaha() as gone:
        url = gone.url
    live = start_engine(
        "sqlite",
        http=True,
        waha_url=url,
        waha_api_key=SecretStr(DEFAULT_API_KEY),
        waha_webhook_secret=SecretStr(WAHA_SECRET),
    )
    api_key = register(live.channel, AGENCY).api_key
    with httpx.Client(base_url=live.base_url, headers={"X-API-Key": api_key}, timeout=30) as http:
        response = http.post(
            "/api/v1/sessions", json={"agencyId": AGENCY, "tenantId": TENANT, "provider": "waha"}
        )
        assert response.status_code == 503, response.text
        assert DEFAULT_API_KEY not in response.text
        assert WAHA_SECRET not in response.text
        assert url not in response.text
        assert ok(http.get("/api/v1/sessions", params={"agencyId": AGENCY})).get("sessions", []) == []


# -- the ingress: signatures, duplicates, unknown sessions, bad bodies ----------------------------


def test_bad_signature_is_401_and_stores_nothing(setup: Setup) -> None:
    s = setup
    session = working_session(s)
    before = stored_counts(s)
    body = inbound_event(session["sessionId"], "false_x_BAD1")

    forged = s.fake.send_raw(session["sessionId"], body, hmac_key="not-the-secret-0123456789")
    assert forged.status_code == 401, forged.text
    # A valid signature of other bytes does not cover these.
    other = httpx.post(s.ingress_url, content=body, headers=sign(body + b" "), timeout=10)
    assert other.status_code == 401
    # A wrong algorithm name is refused even with the right SHA-512 digest.
    wrong_algorithm = httpx.post(
        s.ingress_url, content=body, headers={**sign(body), "X-Webhook-Hmac-Algorithm": "sha256"}, timeout=10
    )
    assert wrong_algorithm.status_code == 401
    assert stored_counts(s) == before


def test_missing_signature_is_401_and_stores_nothing(setup: Setup) -> None:
    s = setup
    session = working_session(s)
    before = stored_counts(s)
    body = inbound_event(session["sessionId"], "false_x_UNSIGNED")

    unsigned = s.fake.send_raw(
        session["sessionId"], body, headers={"X-Webhook-Hmac": None, "X-Webhook-Hmac-Algorithm": None}
    )
    assert unsigned.status_code == 401, unsigned.text
    empty = httpx.post(s.ingress_url, content=body, headers={**sign(body), "X-Webhook-Hmac": ""}, timeout=10)
    assert empty.status_code == 401
    assert stored_counts(s) == before
    # The same bytes, signed, are stored: the refusals were about the signature alone.
    assert httpx.post(s.ingress_url, content=body, headers=sign(body), timeout=10).status_code == 200
    assert count(s, StoredMessage) == before["messages"] + 1


def test_the_same_event_twice_is_stored_once(setup: Setup) -> None:
    s = setup
    session = working_session(s)
    session_id = session["sessionId"]
    body = inbound_event(session_id, "false_15557654321@c.us_DUP1", "only once", event_id="evt_dup_1")

    first = s.fake.send_raw(session_id, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 1, "unroutable": 0}
    (conversation,) = conversations(s, session_id)
    listed = messages(s, conversation["conversationId"])
    counts = stored_counts(s)

    second = s.fake.send_raw(session_id, body)
    assert second.status_code == 200, second.text
    assert second.json() == {"accepted": 1, "unroutable": 0}
    assert messages(s, conversation["conversationId"]) == listed
    assert conversations(s, session_id) == [conversation]
    assert stored_counts(s) == counts
    assert counts["messages"] == 1

    # The same WAHA message under a new event id (a redelivery WAHA re-stamped) is still one message.
    again = inbound_event(session_id, "false_15557654321@c.us_DUP1", "only once", event_id="evt_dup_2")
    assert s.fake.send_raw(session_id, again).status_code == 200
    assert messages(s, conversation["conversationId"]) == listed
    assert count(s, StoredMessage) == 1
    assert provider_events_metric(s, "duplicate") == 2.0


def test_event_for_an_unknown_session_is_202_and_kept_as_unroutable(setup: Setup) -> None:
    s = setup
    before = provider_events_metric(s, "unroutable")
    body = inbound_event("no-such-session", "false_x_LOST", event_id="evt_lost_1")

    response = httpx.post(s.ingress_url, content=body, headers=sign(body), timeout=10)

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 0, "unroutable": 1}
    with s.live.engine.database.reader() as tx:
        (row,) = tx.scalars(select(UnroutableProviderEvent)).all()
    assert (row.provider, row.provider_session, row.event_type, row.event_id) == (
        "waha",
        "no-such-session",
        "message",
        "evt_lost_1",
    )
    assert count(s, StoredMessage) == 0
    assert provider_events_metric(s, "unroutable") == before + 1
    # A second delivery of it is a duplicate, not a second unroutable row.
    again = httpx.post(s.ingress_url, content=body, headers=sign(body), timeout=10)
    assert again.status_code == 200
    assert again.json() == {"accepted": 1, "unroutable": 0}
    assert count(s, UnroutableProviderEvent) == 1


MALFORMED = {
    "not json": b"{not json",
    "a list": b"[1, 2, 3]",
    "no event": json.dumps({"session": "s", "payload": {}}).encode(),
    "payload not an object": json.dumps({"event": "message", "session": "s", "payload": "x"}).encode(),
    "message without id": json.dumps(
        {"event": "message", "session": "s", "payload": {"from": CUSTOMER, "body": "x"}}
    ).encode(),
    "unknown ack": json.dumps(
        {"event": "message.ack", "session": "s", "payload": {"id": "m", "ack": 9}}
    ).encode(),
    "unknown session status": json.dumps(
        {"event": "session.status", "session": "s", "payload": {"status": "EXPLODED"}}
    ).encode(),
    "NaN": b'{"event": "message", "session": "s", "payload": {"id": "m", "from": "a", "timestamp": NaN}}',
    "not UTF-8": b'{"event": "\xff"}',
}


def test_malformed_bodies_with_a_valid_signature_are_400_and_store_nothing(
    start_engine: Callable[..., LiveEngine], fake: FakeWaha
) -> None:
    live = start_engine(
        "sqlite",
        http=True,
        waha_url=fake.url,
        waha_api_key=SecretStr(DEFAULT_API_KEY),
        waha_webhook_secret=SecretStr(WAHA_SECRET),
    )
    answers = {}
    for name, body in MALFORMED.items():
        response = httpx.post(
            f"{live.base_url}/v1/webhooks/waha", content=body, headers=sign(body), timeout=10
        )
        answers[name] = (response.status_code, response.json()["code"])
    assert answers == dict.fromkeys(MALFORMED, (400, grpc.StatusCode.INVALID_ARGUMENT.value[0]))
    with live.engine.database.reader() as tx:
        for model in (ProviderEventReceipt, UnroutableProviderEvent, StoredMessage, Conversation):
            assert tx.scalar(select(func.count()).select_from(model)) == 0


def test_malformed_body_for_a_known_session_stores_nothing_on_both_databases(setup: Setup) -> None:
    s = setup
    session = working_session(s)
    before = stored_counts(s)
    # Right envelope and session, but the message has no sender.
    body = waha_event(session["sessionId"], "message", {"id": "false_x_NOFROM", "body": "hi"})
    response = s.fake.send_raw(session["sessionId"], body)
    assert response.status_code == 400, response.text
    assert stored_counts(s) == before


# -- WAHA's webhook arriving before its API answer ------------------------------------------------


def test_stop_succeeds_when_waha_reports_first(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    s = setup
    session_id = working_session(s)["sessionId"]
    waha = s.live.engine.providers["waha"]
    stop = waha.stop

    def stop_then_webhooks(session: Any) -> None:
        # WAHA answers, and its STOPPED webhook is recorded before the engine reads the answer.
        stop(session)
        s.fake.wait_deliveries()

    monkeypatch.setattr(waha, "stop", stop_then_webhooks)
    response = action(s, session_id, "stop")

    assert get_session(s, session_id)["status"] == "SESSION_STATUS_STOPPED"
    assert response.status_code == 200, response.text
    assert response.json()["session"]["status"] == "SESSION_STATUS_STOPPED"


def test_an_ack_is_kept_when_waha_reports_first(
    start_engine: Callable[..., LiveEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeWaha(auto_ack=2) as fake:  # every sendText is followed by a DEVICE (delivered) ack
        live = start_engine(
            "sqlite",
            http=True,
            waha_url=fake.url,
            waha_api_key=SecretStr(DEFAULT_API_KEY),
            waha_webhook_secret=SecretStr(WAHA_SECRET),
        )
        api_key = register(live.channel, AGENCY).api_key
        with httpx.Client(base_url=live.base_url, headers={"X-API-Key": api_key}, timeout=10) as http:
            s = Setup(live, fake, http, api_key)
            s.gate.set()
            session_id = working_session(s)["sessionId"]
            waha = live.engine.providers["waha"]
            send_text = waha.send_text

            def send_then_webhooks(session: Any, chat_id: str, text: str) -> Any:
                sent = send_text(session, chat_id, text)
                fake.wait_deliveries()
                return sent

            monkeypatch.setattr(waha, "send_text", send_then_webhooks)
            sent = ok(
                http.post(
                    f"/api/v1/sessions/{session_id}/messages",
                    json={"agencyId": AGENCY, "to": CUSTOMER, "text": "fast ack"},
                )
            )["message"]
            (ack_delivery,) = [d for d in fake.deliveries if d.event["event"] == "message.ack"]
            assert ack_delivery.status == 200
            assert ack_delivery.event["payload"]["id"] == sent["providerMessageId"]
            # Nothing is pending any more: the ack was recorded before SendMessage answered.
            assert message_status(s, sent["conversationId"], sent["messageId"]) == "MESSAGE_STATUS_DELIVERED"
