"""The WAHA adapter against a fake WAHA server over real HTTP: requests, errors, webhooks, signatures.

The fake sends its webhooks to a small local receiver; verifying them with the adapter keeps the
fake honest (it signs and shapes webhooks the way WAHA documents).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from engine.sessions.providers.base import (
    InboundMessage,
    MalformedPayload,
    MessageAck,
    ProviderError,
    ProviderSession,
    SentMessage,
    SessionStatusChanged,
)
from engine.sessions.providers.waha import WahaProvider
from tests.support.fake_waha import FakeWaha, ReceivedWebhook, WebhookReceiver

API_KEY = "waha-api-key-do-not-leak-0123456789"
SECRET = "waha-hmac-secret-do-not-leak-0123456789"
CHAT = "15551234567@c.us"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def fake() -> Iterator[FakeWaha]:
    with FakeWaha(api_key=API_KEY) as running:
        yield running


@pytest.fixture
def provider(fake: FakeWaha, receiver: WebhookReceiver) -> Iterator[WahaProvider]:
    adapter = WahaProvider(fake.url, API_KEY, SECRET, receiver.url, timeout_seconds=5.0)
    yield adapter
    adapter.close()


@pytest.fixture
def session() -> ProviderSession:
    return ProviderSession(
        session_id="ses_1",
        provider_session="agency-a.ses_1",
        agency_id="agency-a",
        tenant_id="tenant-1",
        metadata={"plan": "gold"},
    )


def offline_provider(webhook_secret: str = SECRET) -> WahaProvider:
    """An adapter whose WAHA never sees a request (for parsing and signature tests)."""
    return WahaProvider("http://127.0.0.1:9", API_KEY, webhook_secret, "http://ingress.invalid")


def sign(body: bytes, key: str = SECRET) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def envelope(event: str, payload: Any, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "evt_01jq0000000000000000000000",
        "timestamp": 1741249702485,
        "event": event,
        "session": "agency-a.ses_1",
        "metadata": {"agencyId": "agency-a"},
        "payload": payload,
        "engine": "WEBJS",
    }
    body.update(extra)
    return json.dumps(body).encode()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def assert_no_secrets(error: BaseException) -> None:
    text = f"{error} {error!r} {error.__cause__!r} {error.__context__!r}"
    assert API_KEY not in text
    assert SECRET not in text


def working(fake: FakeWaha, provider: WahaProvider, session: ProviderSession) -> None:
    provider.create(session)
    provider.start(session, paired=False)
    fake.pair(session.provider_session)
    fake.wait_deliveries()


def parsed(provider: WahaProvider, hooks: list[ReceivedWebhook]) -> list[Any]:
    events = []
    for hook in hooks:
        assert provider.verify_signature(hook.body, hook.headers), hook.body
        events.extend(provider.parse_events(hook.body))
    return events


# --- actions: the documented requests ----------------------------------------------------------------


def test_create_posts_the_session_with_metadata_and_a_signed_webhook(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, receiver: WebhookReceiver
) -> None:
    provider.create(session)

    (call,) = fake.requests
    assert (call.method, call.path, call.api_key) == ("POST", "/api/sessions", API_KEY)
    assert call.json == {
        "name": "agency-a.ses_1",
        "start": False,
        "config": {
            "metadata": {
                "plan": "gold",
                "agencyId": "agency-a",
                "tenantId": "tenant-1",
                "sessionId": "ses_1",
            },
            "webhooks": [
                {
                    "url": receiver.url,
                    "events": ["message", "message.ack", "session.status"],
                    "hmac": {"key": SECRET},
                }
            ],
        },
    }
    assert fake.session("agency-a.ses_1").status == "STOPPED"
    assert fake.wait_deliveries() == []


def test_create_routing_ids_override_caller_metadata(fake: FakeWaha, provider: WahaProvider) -> None:
    spoofing = ProviderSession("ses_2", "s2", "agency-a", "tenant-1", {"agencyId": "agency-b", "x": "y"})
    provider.create(spoofing)
    assert fake.requests[0].json["config"]["metadata"] == {
        "agencyId": "agency-a",
        "x": "y",
        "tenantId": "tenant-1",
        "sessionId": "ses_2",
    }


@pytest.mark.parametrize(
    ("action", "method", "path"),
    [
        ("start", "POST", "/api/sessions/agency-a.ses_1/start"),
        ("stop", "POST", "/api/sessions/agency-a.ses_1/stop"),
        ("logout", "POST", "/api/sessions/agency-a.ses_1/logout"),
        ("delete", "DELETE", "/api/sessions/agency-a.ses_1"),
    ],
)
def test_session_actions_call_the_documented_endpoints(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, action: str, method: str, path: str
) -> None:
    provider.create(session)
    if action == "start":
        provider.start(session, paired=False)
    else:
        getattr(provider, action)(session)
    call = fake.requests[-1]
    assert (call.method, call.path, call.json, call.api_key) == (method, path, None, API_KEY)


def test_lifecycle_moves_the_fake_session(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession
) -> None:
    name = session.provider_session
    provider.create(session)
    provider.start(session, paired=False)
    assert fake.session(name).status == "SCAN_QR_CODE"
    fake.pair(name)
    assert fake.session(name).status == "WORKING"
    provider.stop(session)
    assert (fake.session(name).status, fake.session(name).paired) == ("STOPPED", True)
    provider.start(session, paired=True)
    assert fake.session(name).status == "WORKING"
    provider.logout(session)
    assert (fake.session(name).status, fake.session(name).paired) == ("STOPPED", False)
    provider.delete(session)
    assert name not in fake.sessions


def test_delete_of_a_session_waha_does_not_know_is_fine(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession
) -> None:
    provider.delete(session)
    provider.create(session)
    provider.delete(session)
    provider.delete(session)
    assert [call.method for call in fake.requests] == ["DELETE", "POST", "DELETE", "DELETE"]


def test_session_name_is_one_path_segment(fake: FakeWaha, provider: WahaProvider) -> None:
    odd = ProviderSession("ses_3", "a/b?c", "agency-a", "tenant-1")
    provider.create(odd)
    provider.start(odd, paired=False)
    assert fake.requests[-1].path == "/api/sessions/a%2Fb%3Fc/start"
    assert provider.qr_value(odd)
    assert fake.requests[-1].path == "/api/a%2Fb%3Fc/auth/qr"


def test_qr_value_asks_for_the_raw_format(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession
) -> None:
    provider.create(session)
    provider.start(session, paired=False)
    value = provider.qr_value(session)
    assert value.startswith("2@fake-qr-agency-a.ses_1-")
    call = fake.requests[-1]
    assert (call.method, call.path, call.query, call.api_key) == (
        "GET",
        "/api/agency-a.ses_1/auth/qr",
        {"format": "raw"},
        API_KEY,
    )


@pytest.mark.parametrize("id_style", ["object", "string"])
def test_send_text_posts_the_documented_body(
    receiver: WebhookReceiver, session: ProviderSession, id_style: str
) -> None:
    with FakeWaha(api_key=API_KEY, id_style=id_style) as fake:
        provider = WahaProvider(fake.url, API_KEY, SECRET, receiver.url)
        working(fake, provider, session)
        sent = provider.send_text(session, CHAT, "Hi there!")
        provider.close()
        call = fake.requests[-1]
        assert (call.method, call.path, call.api_key) == ("POST", "/api/sendText", API_KEY)
        assert call.json == {"session": "agency-a.ses_1", "chatId": CHAT, "text": "Hi there!"}
        (recorded,) = fake.session(session.provider_session).sent
        assert sent == SentMessage(provider_message_id=recorded["id"], status="PENDING")
        assert sent.provider_message_id.startswith(f"true_{CHAT}_")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"id": "true_1@c.us_AAA"}, SentMessage("true_1@c.us_AAA", "PENDING")),
        ({"id": "true_1@c.us_AAA", "ack": 1}, SentMessage("true_1@c.us_AAA", "SENT")),
        ({"id": {"_serialized": "true_1@c.us_B"}, "ack": 0}, SentMessage("true_1@c.us_B", "PENDING")),
        ({"id": "x", "ack": 2, "ackName": "DEVICE"}, SentMessage("x", "DELIVERED")),
        ({"id": "x", "ack": -1}, SentMessage("x", "FAILED")),
        ({"id": "x", "ack": 99}, SentMessage("x", "PENDING")),
        ({"id": "x", "ack": True}, SentMessage("x", "PENDING")),
        # NOWEB answers Baileys' message key; WAHA's acks use the serialized {fromMe}_{chat}_{id}.
        (
            {"key": {"remoteJid": "15551234567@s.whatsapp.net", "fromMe": True, "id": "3EB0C"}, "status": 1},
            SentMessage(f"true_{CHAT}_3EB0C", "PENDING"),
        ),
    ],
)
def test_send_text_reads_the_id_and_ack_of_each_answer_shape(
    fake: FakeWaha,
    provider: WahaProvider,
    session: ProviderSession,
    answer: dict[str, Any],
    expected: SentMessage,
) -> None:
    fake.fail_next(201, body=json.dumps(answer).encode())
    assert provider.send_text(session, CHAT, "hi") == expected


def test_no_api_key_header_without_a_key(receiver: WebhookReceiver, session: ProviderSession) -> None:
    with FakeWaha(api_key=None) as fake:
        provider = WahaProvider(fake.url, "", SECRET, receiver.url)
        provider.create(session)
        provider.close()
        assert fake.requests[0].api_key is None


# --- actions: failures -------------------------------------------------------------------------------


def run_action(provider: WahaProvider, session: ProviderSession, action: str) -> object:
    if action == "start":
        return provider.start(session, paired=False)
    if action == "send_text":
        return provider.send_text(session, CHAT, "hi")
    return getattr(provider, action)(session)


ACTIONS = ["create", "start", "stop", "logout", "delete", "qr_value", "send_text"]
LABELS = {"qr_value": "qr", "send_text": "sendText"}


@pytest.mark.parametrize("status", [500, 502, 400, 422])
@pytest.mark.parametrize("action", ACTIONS)
def test_error_answers_become_provider_errors(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, action: str, status: int
) -> None:
    fake.fail_next(status)
    with pytest.raises(ProviderError) as caught:
        run_action(provider, session, action)
    assert str(caught.value) == f"WAHA answered {status} to {LABELS.get(action, action)}"
    assert_no_secrets(caught.value)


def test_delete_still_fails_on_other_errors(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession
) -> None:
    fake.fail_next(403)
    with pytest.raises(ProviderError, match="WAHA answered 403 to delete"):
        provider.delete(session)


def test_unknown_session_is_an_error_for_other_actions(
    provider: WahaProvider, session: ProviderSession
) -> None:
    with pytest.raises(ProviderError, match="WAHA answered 404 to start"):
        provider.start(session, paired=False)


def test_wrong_api_key_is_an_error_without_the_key(
    fake: FakeWaha, receiver: WebhookReceiver, session: ProviderSession
) -> None:
    wrong = WahaProvider(fake.url, API_KEY + "-wrong", SECRET, receiver.url)
    with pytest.raises(ProviderError, match="WAHA answered 401 to create") as caught:
        wrong.create(session)
    wrong.close()
    assert_no_secrets(caught.value)
    assert fake.requests[0].api_key == API_KEY + "-wrong"


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("qr_value", b"not json"),
        ("qr_value", b"[1, 2]"),
        ("qr_value", b'{"value": ""}'),
        ("qr_value", b'{"value": 12}'),
        ("qr_value", b""),
        ("send_text", b"<html>"),
        ("send_text", b'"true_x"'),
        ("send_text", b"{}"),
        ("send_text", b'{"id": {"id": "no-serialized"}}'),
        ("send_text", b'{"id": ""}'),
        ("send_text", b"\xff\xfe"),
    ],
)
def test_unparsable_answers_become_provider_errors(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, action: str, body: bytes
) -> None:
    fake.fail_next(200, body=body)
    with pytest.raises(
        ProviderError, match=r"^WAHA sent (an unparsable answer|no \w+ \w+) to (qr|sendText)$"
    ):
        run_action(provider, session, action)


@pytest.mark.parametrize("action", ACTIONS)
def test_unreachable_waha_is_a_provider_error_without_credentials(
    session: ProviderSession, action: str
) -> None:
    # Credentials in the URL's user part must not surface either.
    adapter = WahaProvider(f"http://user:{API_KEY}@127.0.0.1:{closed_port()}", API_KEY, SECRET, "http://x")
    with pytest.raises(ProviderError, match=f"^WAHA unreachable for {LABELS.get(action, action)}$") as caught:
        run_action(adapter, session, action)
    adapter.close()
    assert_no_secrets(caught.value)
    assert caught.value.__cause__ is None


def test_timeouts_are_provider_errors(session: ProviderSession) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    adapter = WahaProvider(
        "http://waha.test", API_KEY, SECRET, "http://x", transport=httpx.MockTransport(hang)
    )
    with pytest.raises(ProviderError, match=r"^WAHA timed out on start$") as caught:
        adapter.start(session, paired=False)
    assert_no_secrets(caught.value)


def test_redirects_are_not_followed(session: ProviderSession) -> None:
    seen: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"Location": "http://elsewhere.test/steal"})

    adapter = WahaProvider(
        "http://waha.test", API_KEY, SECRET, "http://x", transport=httpx.MockTransport(redirect)
    )
    with pytest.raises(ProviderError, match=r"^WAHA answered 307 to stop$"):
        adapter.stop(session)
    assert [str(request.url) for request in seen] == ["http://waha.test/api/sessions/agency-a.ses_1/stop"]


# --- webhooks from the fake: shaped and signed like WAHA's ---------------------------------------------


def test_start_sends_signed_session_status_webhooks(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, receiver: WebhookReceiver
) -> None:
    provider.create(session)
    provider.start(session, paired=False)
    fake.wait_deliveries()

    hooks = receiver.received
    assert len(hooks) == 2
    for hook in hooks:
        assert hook.path == "/v1/webhooks/waha"
        assert hook.headers["content-type"] == "application/json"
        assert hook.headers["x-webhook-hmac-algorithm"] == "sha512"
        assert hook.headers["x-webhook-hmac"] == sign(hook.body)
        assert hook.headers["x-webhook-request-id"]
        assert hook.headers["x-webhook-timestamp"].isdigit()
        body = json.loads(hook.body)
        assert body["id"].startswith("evt_") and len(body["id"]) == 30
        assert body["session"] == "agency-a.ses_1"
        assert body["metadata"] == {
            "plan": "gold",
            "agencyId": "agency-a",
            "tenantId": "tenant-1",
            "sessionId": "ses_1",
        }
    events = parsed(provider, hooks)
    assert [(e.provider_session, e.status, e.account_id) for e in events] == [
        ("agency-a.ses_1", "STARTING", ""),
        ("agency-a.ses_1", "SCAN_QR_CODE", ""),
    ]
    assert len({e.event_id for e in events}) == 2


def test_pairing_stop_restart_and_logout_webhooks(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, receiver: WebhookReceiver
) -> None:
    working(fake, provider, session)
    provider.stop(session)
    provider.start(session, paired=True)
    provider.logout(session)
    provider.start(session, paired=False)
    fake.wait_deliveries()

    events = parsed(provider, receiver.received)
    assert all(isinstance(e, SessionStatusChanged) for e in events)
    assert [(e.status, e.account_id) for e in events] == [
        ("STARTING", ""),
        ("SCAN_QR_CODE", ""),
        ("WORKING", "15550001111"),
        ("STOPPED", "15550001111"),
        ("STARTING", "15550001111"),
        ("WORKING", "15550001111"),
        ("STOPPED", ""),
        ("STARTING", ""),
        ("SCAN_QR_CODE", ""),
    ]


def test_inbound_message_webhook(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, receiver: WebhookReceiver
) -> None:
    working(fake, provider, session)
    payload = fake.inbound(session.provider_session, CHAT, "hello ✓")
    media = fake.inbound(session.provider_session, CHAT, None, message_id="false_x_MEDIA")

    first, second = parsed(provider, receiver.received[-2:])
    assert first == InboundMessage(
        provider_session="agency-a.ses_1",
        event_id=json.loads(receiver.received[-2].body)["id"],
        provider_message_id=payload["id"],
        sender=CHAT,
        text="hello ✓",
        sent_at=datetime.fromtimestamp(payload["timestamp"], tz=UTC),
    )
    assert (second.provider_message_id, second.text) == (media["id"], "")


@pytest.mark.parametrize(
    ("ack", "status"),
    [(-1, "FAILED"), (0, "PENDING"), (1, "SENT"), (2, "DELIVERED"), (3, "READ"), (4, "READ")],
)
def test_ack_webhooks_of_sent_messages(
    fake: FakeWaha,
    provider: WahaProvider,
    session: ProviderSession,
    receiver: WebhookReceiver,
    ack: int,
    status: str,
) -> None:
    working(fake, provider, session)
    sent = provider.send_text(session, CHAT, "hi")
    fake.ack(session.provider_session, sent.provider_message_id, ack)

    (event,) = parsed(provider, receiver.received[-1:])
    assert isinstance(event, MessageAck)
    assert (event.provider_message_id, event.status) == (sent.provider_message_id, status)


def test_auto_ack_follows_each_send(receiver: WebhookReceiver, session: ProviderSession) -> None:
    with FakeWaha(api_key=API_KEY, auto_ack=1) as fake:
        provider = WahaProvider(fake.url, API_KEY, SECRET, receiver.url)
        working(fake, provider, session)
        sent = provider.send_text(session, CHAT, "hi")
        fake.wait_deliveries()
        provider.close()
    (event,) = parsed(provider, receiver.received[-1:])
    assert event == MessageAck("agency-a.ses_1", event.event_id, sent.provider_message_id, "SENT")


def test_send_raw_for_bad_signatures_and_duplicates(
    fake: FakeWaha, provider: WahaProvider, session: ProviderSession, receiver: WebhookReceiver
) -> None:
    working(fake, provider, session)
    original = receiver.received[-1]

    assert fake.send_raw(session.provider_session, original.body).status_code == 200
    assert (
        fake.send_raw(session.provider_session, original.body, hmac_key="not-the-secret").status_code == 200
    )
    assert (
        fake.send_raw(session.provider_session, original.body, headers={"X-Webhook-Hmac": None}).status_code
        == 200
    )

    duplicate, forged, unsigned = receiver.received[-3:]
    assert provider.verify_signature(duplicate.body, duplicate.headers)
    assert provider.parse_events(duplicate.body) == provider.parse_events(original.body)
    assert not provider.verify_signature(forged.body, forged.headers)
    assert "x-webhook-hmac" not in unsigned.headers
    assert not provider.verify_signature(unsigned.body, unsigned.headers)


def test_the_fake_signs_like_the_documented_example() -> None:
    # The example in WAHA's events documentation (HMAC authentication section).
    body = b'{"event":"message","session":"default","engine":"WEBJS"}'
    expected = (
        "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e"
        "78a33a63f6752c2c1631777076153fa89"
    )
    provider = offline_provider(webhook_secret="my-secret-key")
    assert provider.verify_signature(body, {"x-webhook-hmac": expected, "x-webhook-hmac-algorithm": "sha512"})
    assert sign(body, "my-secret-key") == expected


# --- signature verification ---------------------------------------------------------------------------

BODY = envelope("message", {"id": "false_1@c.us_A", "from": "1@c.us", "body": "hi", "timestamp": 1700000000})


@pytest.mark.parametrize(
    ("headers", "body", "valid"),
    [
        ({"x-webhook-hmac": sign(BODY), "x-webhook-hmac-algorithm": "sha512"}, BODY, True),
        ({"x-webhook-hmac": sign(BODY)}, BODY, True),
        ({"x-webhook-hmac": sign(BODY), "x-webhook-hmac-algorithm": "SHA512"}, BODY, True),
        ({"x-webhook-hmac": sign(BODY).upper(), "x-webhook-hmac-algorithm": "sha512"}, BODY, True),
        ({"x-webhook-hmac": sign(BODY), "x-webhook-hmac-algorithm": "sha256"}, BODY, False),
        ({"x-webhook-hmac": sign(BODY), "x-webhook-hmac-algorithm": ""}, BODY, False),
        ({"x-webhook-hmac": sign(BODY, "other-secret")}, BODY, False),
        ({"x-webhook-hmac": sign(BODY)[:-1] + ("0" if sign(BODY)[-1] != "0" else "1")}, BODY, False),
        ({"x-webhook-hmac": sign(BODY)[:64]}, BODY, False),
        ({"x-webhook-hmac": hashlib.sha512(BODY).hexdigest()}, BODY, False),
        ({"x-webhook-hmac": hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()}, BODY, False),
        ({"x-webhook-hmac": ""}, BODY, False),
        ({"x-webhook-hmac": "ünïcode"}, BODY, False),
        ({}, BODY, False),
        ({"x-webhook-hmac-algorithm": "sha512"}, BODY, False),
        ({"x-webhook-hmac": sign(BODY)}, BODY[:-1] + b" ", False),
        ({"x-webhook-hmac": sign(BODY)}, BODY + b"\n", False),
        ({"x-webhook-hmac": sign(BODY)}, BODY.replace(b'"hi"', b'"hI"'), False),
    ],
    ids=[
        "good",
        "good-without-algorithm",
        "algorithm-case-insensitive",
        "hex-case-insensitive",
        "wrong-algorithm",
        "empty-algorithm",
        "other-key",
        "last-digit-changed",
        "truncated",
        "plain-hash",
        "sha256-hmac",
        "empty",
        "non-ascii",
        "missing",
        "only-algorithm",
        "body-byte-changed",
        "body-byte-added",
        "body-letter-changed",
    ],
)
def test_verify_signature(headers: dict[str, str], body: bytes, valid: bool) -> None:
    assert offline_provider().verify_signature(body, headers) is valid


def test_an_empty_secret_verifies_nothing() -> None:
    provider = offline_provider(webhook_secret="")
    assert not provider.verify_signature(BODY, {"x-webhook-hmac": sign(BODY, "")})


def test_signature_headers_are_the_ones_verify_reads() -> None:
    assert WahaProvider.signature_headers == frozenset({"x-webhook-hmac", "x-webhook-hmac-algorithm"})
    assert WahaProvider.name == "waha"


# --- parsing --------------------------------------------------------------------------------------------


def test_parse_message() -> None:
    (event,) = offline_provider().parse_events(BODY)
    assert event == InboundMessage(
        provider_session="agency-a.ses_1",
        event_id="evt_01jq0000000000000000000000",
        provider_message_id="false_1@c.us_A",
        sender="1@c.us",
        text="hi",
        sent_at=datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "m", "from": "1@c.us"},
        {"id": "m", "from": "1@c.us", "body": None, "timestamp": None},
        {"id": "m", "from": "1@c.us", "body": None, "hasMedia": True, "media": {"url": "http://x"}},
    ],
)
def test_parse_message_without_text_or_time(payload: dict[str, Any]) -> None:
    (event,) = offline_provider().parse_events(envelope("message", payload))
    assert isinstance(event, InboundMessage)
    assert (event.provider_message_id, event.text, event.sent_at) == ("m", "", None)


def test_parse_message_with_fractional_timestamp() -> None:
    body = envelope("message", {"id": "m", "from": "1@c.us", "body": "x", "timestamp": 1710481111.853})
    (event,) = offline_provider().parse_events(body)
    assert isinstance(event, InboundMessage)
    assert event.sent_at == datetime.fromtimestamp(1710481111.853, tz=UTC)


def test_own_messages_are_skipped() -> None:
    body = envelope("message", {"id": "true_1@c.us_A", "from": "1@c.us", "fromMe": True, "body": "mine"})
    assert offline_provider().parse_events(body) == []


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"ack": -1, "ackName": "ERROR"}, "FAILED"),
        ({"ack": 0, "ackName": "PENDING"}, "PENDING"),
        ({"ack": 1, "ackName": "SERVER"}, "SENT"),
        ({"ack": 2, "ackName": "DEVICE"}, "DELIVERED"),
        ({"ack": 3, "ackName": "READ"}, "READ"),
        ({"ack": 4, "ackName": "PLAYED"}, "READ"),
        ({"ack": -1}, "FAILED"),
        ({"ack": 0}, "PENDING"),
        ({"ack": 1}, "SENT"),
        ({"ack": 2}, "DELIVERED"),
        ({"ack": 3}, "READ"),
        ({"ack": 4}, "READ"),
        ({"ackName": "DEVICE"}, "DELIVERED"),
        ({"ackName": "PLAYED"}, "READ"),
        # WAHA sends ackName UNKNOWN for acks it cannot name; the number decides then.
        ({"ack": 2, "ackName": "UNKNOWN"}, "DELIVERED"),
    ],
)
def test_parse_ack_mapping(payload: dict[str, Any], status: str) -> None:
    body = envelope("message.ack", {"id": "true_1@c.us_A", "from": "1@c.us", "fromMe": True, **payload})
    assert offline_provider().parse_events(body) == [
        MessageAck("agency-a.ses_1", "evt_01jq0000000000000000000000", "true_1@c.us_A", status)
    ]


@pytest.mark.parametrize(
    ("waha", "ours"),
    [
        ("STOPPED", "STOPPED"),
        ("STARTING", "STARTING"),
        ("SCAN_QR_CODE", "SCAN_QR_CODE"),
        ("WORKING", "WORKING"),
        ("FAILED", "FAILED"),
        ("PASSKEY_REQUIRED", "SCAN_QR_CODE"),
        ("PASSKEY_CONFIRMATION_REQUIRED", "SCAN_QR_CODE"),
    ],
)
def test_parse_session_status(waha: str, ours: str) -> None:
    body = envelope("session.status", {"name": "agency-a.ses_1", "status": waha}, me={"id": "7911111@c.us"})
    assert offline_provider().parse_events(body) == [
        SessionStatusChanged("agency-a.ses_1", "evt_01jq0000000000000000000000", ours, account_id="7911111")
    ]


@pytest.mark.parametrize(
    ("me", "account"),
    [
        (None, ""),
        ({}, ""),
        ({"id": "7911111@c.us", "pushName": "~"}, "7911111"),
        ({"id": "123@lid"}, "123@lid"),
    ],
)
def test_parse_session_status_account(me: Any, account: str) -> None:
    extra = {} if me is None else {"me": me}
    (event,) = offline_provider().parse_events(envelope("session.status", {"status": "WORKING"}, **extra))
    assert isinstance(event, SessionStatusChanged)
    assert event.account_id == account


@pytest.mark.parametrize(
    "event", ["message.any", "state.change", "presence.update", "engine.event", "group.v2.join"]
)
def test_other_events_are_left_out(event: str) -> None:
    assert offline_provider().parse_events(envelope(event, {"anything": 1})) == []


def test_an_event_without_id_gets_a_stable_id_from_the_body() -> None:
    provider = offline_provider()
    body = json.dumps({"event": "session.status", "session": "s", "payload": {"status": "WORKING"}}).encode()
    other = body.replace(b"WORKING", b"STOPPED")
    (first,) = provider.parse_events(body)
    (again,) = provider.parse_events(body)
    (different,) = provider.parse_events(other)
    assert first.event_id == again.event_id == "sha256-" + hashlib.sha256(body).hexdigest()
    assert different.event_id != first.event_id
    assert len(first.event_id) <= 128


def _drop(key: str) -> bytes:
    body = json.loads(BODY)
    del body[key]
    return json.dumps(body).encode()


def _message(**payload: Any) -> bytes:
    return envelope("message", {"id": "m", "from": "1@c.us", "body": "x", **payload})


MALFORMED: list[tuple[str, bytes, str]] = [
    ("not-json", b"hello", "not JSON"),
    ("empty", b"", "not JSON"),
    ("invalid-utf8", b'{"event": "\xff"}', "not JSON"),
    ("truncated", BODY[:-3], "not JSON"),
    ("nan", b'{"event": "message", "session": "s", "payload": {}, "x": NaN}', "NaN"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, "not JSON|not a JSON object"),
    ("array", b"[]", "not a JSON object"),
    ("string", b'"message"', "not a JSON object"),
    ("null", b"null", "not a JSON object"),
    ("no-event", _drop("event"), "'event'"),
    ("event-number", envelope(3, {}), "'event'"),
    ("no-session", _drop("session"), "'session'"),
    ("session-empty", envelope("message", {}, session=""), "'session'"),
    ("session-object", envelope("message", {}, session={"name": "x"}), "'session'"),
    ("no-payload", _drop("payload"), "'payload'"),
    ("payload-array", envelope("message", []), "'payload'"),
    ("payload-null", envelope("session.status", None), "'payload'"),
    ("id-number", envelope("message", {"id": "m", "from": "1@c.us"}, id=7), "'id'"),
    ("message-no-id", envelope("message", {"from": "1@c.us", "body": "x"}), "'payload.id'"),
    ("message-id-object", _message(id={"_serialized": "m"}), "'payload.id'"),
    ("message-no-from", envelope("message", {"id": "m", "body": "x"}), "'payload.from'"),
    ("message-from-number", _message(**{"from": 15551234567}), "'payload.from'"),
    ("message-body-number", _message(body=5), "'payload.body'"),
    ("message-timestamp-text", _message(timestamp="1700000000"), "'payload.timestamp'"),
    ("message-timestamp-bool", _message(timestamp=True), "'payload.timestamp'"),
    ("message-timestamp-huge", _message(timestamp=10**20), "'payload.timestamp'"),
    ("ack-no-id", envelope("message.ack", {"ack": 3}), "'payload.id'"),
    ("ack-missing", envelope("message.ack", {"id": "m"}), "'payload.ack'"),
    ("ack-text", envelope("message.ack", {"id": "m", "ack": "3"}), "'payload.ack'"),
    ("ack-bool", envelope("message.ack", {"id": "m", "ack": True}), "'payload.ack'"),
    ("ack-float", envelope("message.ack", {"id": "m", "ack": 3.0}), "'payload.ack'"),
    ("ack-unknown", envelope("message.ack", {"id": "m", "ack": 7}), "unknown ack"),
    ("ack-name-unknown", envelope("message.ack", {"id": "m", "ackName": "SEEN"}), "'payload.ack'"),
    ("ack-name-number", envelope("message.ack", {"id": "m", "ackName": 3, "ack": 3}), "'payload.ackName'"),
    ("status-missing", envelope("session.status", {"name": "s"}), "'payload.status'"),
    ("status-number", envelope("session.status", {"status": 2}), "'payload.status'"),
    ("status-unknown", envelope("session.status", {"status": "SLEEPING"}), "unknown session status"),
    ("status-lower", envelope("session.status", {"status": "working"}), "unknown session status"),
    ("me-string", envelope("session.status", {"status": "WORKING"}, me="7911111@c.us"), "'me'"),
    ("me-id-number", envelope("session.status", {"status": "WORKING"}, me={"id": 7911111}), "'me.id'"),
]


@pytest.mark.parametrize(
    ("body", "reason"), [(b, r) for _, b, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_bodies(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        offline_provider().parse_events(body)
