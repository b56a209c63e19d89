"""The Python client's webhook verifier: the Standard Webhooks test vector, deliveries signed by
the reference `standardwebhooks` library and by hand with Ed25519, real deliveries of a live
engine to the test receiver, and every way a request must be refused."""

from __future__ import annotations

import base64
import email.message
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format
from nacl.signing import SigningKey
from standardwebhooks import Webhook

from tests.support.constants import PSK, WEBHOOK_SECRET
from tests.support.live import LiveEngine
from tests.support.receiver import Received, WebhookReceiver
from workflow_engine.v1 import common_pb2, webhook_pb2
from workflow_engine_client import (
    EngineClient,
    RegistrationClient,
    WebhookVerificationError,
    hmac_key,
    verify_signature,
    verify_signature_ed25519,
    verify_webhook,
    verify_webhook_ed25519,
)

# The test vector of the Standard Webhooks specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SPEC_HEADERS = {
    "webhook-id": SPEC_ID,
    "webhook-timestamp": str(SPEC_TIMESTAMP),
    "webhook-signature": SPEC_SIGNATURE,
}

PLAIN_SECRET = "plain-dashboard-secret-0123456789abcdefgh"
NOW = 1_800_000_000


def event_body(**fields: object) -> str:
    """The JSON of a WebhookEvent, as the engine sends it."""
    event = webhook_pb2.WebhookEvent(
        id="evt_01TEST",
        type="message.received",
        agency_id="agency-a",
        tenant_id="tenant-1",
        session_id="ses_01",
        message_received=webhook_pb2.MessageReceivedData(
            message=common_pb2.Message(message_id="msg_1", text="Hi there")
        ),
    )
    for name, value in fields.items():
        setattr(event, name, value)
    event.timestamp.FromSeconds(NOW)
    return json_format.MessageToJson(event, indent=None)


def reference_signed(
    secret: str | bytes, body: str, webhook_id: str = "evt_01TEST", at: int = NOW
) -> dict[str, str]:
    """Headers of a delivery signed by the reference library."""
    signature = Webhook(secret).sign(webhook_id, datetime.fromtimestamp(at, tz=UTC), body)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def ed25519_signed(
    key: SigningKey, body: bytes, webhook_id: str = "evt_01TEST", at: int = NOW
) -> dict[str, str]:
    signature = key.sign(f"{webhook_id}.{at}.".encode() + body).signature
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(at),
        "webhook-signature": "v1a," + base64.b64encode(signature).decode(),
    }


def public_key_of(key: SigningKey) -> str:
    return "whpk_" + base64.b64encode(bytes(key.verify_key)).decode()


def refused(call: Callable[[], object], match: str) -> None:
    with pytest.raises(WebhookVerificationError, match=match):
        call()


# -- the specification's test vector -----------------------------------------------------------


def test_standard_webhooks_test_vector() -> None:
    verify_signature(SPEC_SECRET, SPEC_HEADERS, SPEC_BODY, now=SPEC_TIMESTAMP)
    verify_signature(SPEC_SECRET, SPEC_HEADERS, SPEC_BODY.encode(), now=SPEC_TIMESTAMP + 299)
    # The vector's body is not a WebhookEvent, so the event-level function refuses it.
    refused(
        lambda: verify_webhook(SPEC_SECRET, SPEC_HEADERS, SPEC_BODY, now=SPEC_TIMESTAMP), "not a WebhookEvent"
    )
    refused(lambda: verify_signature(SPEC_SECRET, SPEC_HEADERS, SPEC_BODY), "stale timestamp")
    refused(
        lambda: verify_signature(SPEC_SECRET, SPEC_HEADERS, '{"test": 2432232315}', now=SPEC_TIMESTAMP),
        "no matching v1 signature",
    )


def test_hmac_key_of_secrets() -> None:
    assert hmac_key(SPEC_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert hmac_key(PLAIN_SECRET) == PLAIN_SECRET.encode()
    assert hmac_key(WEBHOOK_SECRET) == WEBHOOK_SECRET.encode()  # `whsec-`, not `whsec_`
    assert hmac_key(b"raw bytes") == b"raw bytes"
    with pytest.raises(ValueError, match="empty"):
        hmac_key("")


# -- deliveries signed by the reference library ------------------------------------------------


@pytest.mark.parametrize("secret", [SPEC_SECRET, PLAIN_SECRET])
def test_reference_library_signatures_verify(secret: str) -> None:
    body = event_body()
    reference_secret: str | bytes = secret if secret.startswith("whsec_") else secret.encode()
    headers = reference_signed(reference_secret, body)
    event = verify_webhook(secret, headers, body, now=NOW)
    assert (event.id, event.type, event.agency_id, event.session_id) == (
        "evt_01TEST",
        "message.received",
        "agency-a",
        "ses_01",
    )
    assert event.message_received.message.text == "Hi there"
    assert verify_webhook(secret, headers, body.encode(), now=NOW) == event


def test_header_names_are_case_insensitive_and_any_header_object_works() -> None:
    body = event_body()
    headers = reference_signed(SPEC_SECRET, body)
    shouting = {name.upper(): value for name, value in headers.items()}
    assert verify_webhook(SPEC_SECRET, shouting, body, now=NOW).id == "evt_01TEST"
    mixed = {"Webhook-Id": headers["webhook-id"], "Webhook-Timestamp": headers["webhook-timestamp"]}
    mixed["Webhook-Signature"] = headers["webhook-signature"]
    assert verify_webhook(SPEC_SECRET, mixed, body, now=NOW).id == "evt_01TEST"
    message = email.message.Message()  # what http.server hands a handler (HTTPMessage)
    for name, value in mixed.items():
        message[name] = value
    assert verify_webhook(SPEC_SECRET, message, body, now=NOW).id == "evt_01TEST"


def test_any_of_several_signatures_passes() -> None:
    body = event_body()
    good = reference_signed(SPEC_SECRET, body)["webhook-signature"]
    other = reference_signed(PLAIN_SECRET.encode(), body)["webhook-signature"]
    for signatures in (
        f"{other} {good}",  # a rotation: old and new secret
        f"v1,AAAA {good} v1a,{base64.b64encode(b'x' * 64).decode()}",
        f"garbage v1,not*base64 {good}",
        f"  {good}  ",
    ):
        headers = {**reference_signed(SPEC_SECRET, body), "webhook-signature": signatures}
        verify_signature(SPEC_SECRET, headers, body, now=NOW)
    only_other = {**reference_signed(SPEC_SECRET, body), "webhook-signature": other}
    refused(lambda: verify_signature(SPEC_SECRET, only_other, body, now=NOW), "no matching v1 signature")


def test_a_v1_signature_under_a_v1a_label_does_not_count() -> None:
    body = event_body()
    headers = reference_signed(SPEC_SECRET, body)
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v2,")
    refused(lambda: verify_signature(SPEC_SECRET, headers, body, now=NOW), "no matching v1 signature")


# -- refusals ----------------------------------------------------------------------------------


def test_tampered_body_wrong_secret_and_changed_headers_are_refused() -> None:
    body = event_body()
    headers = reference_signed(SPEC_SECRET, body)
    refused(
        lambda: verify_webhook(SPEC_SECRET, headers, body.replace("Hi there", "Hi therE"), now=NOW),
        "no matching",
    )
    refused(lambda: verify_webhook(SPEC_SECRET, headers, body + " ", now=NOW), "no matching")
    refused(lambda: verify_webhook(PLAIN_SECRET, headers, body, now=NOW), "no matching")
    refused(lambda: verify_webhook("whsec_" + "A" * 43, headers, body, now=NOW), "no matching")
    other_id = {**headers, "webhook-id": "evt_02OTHER"}
    refused(lambda: verify_webhook(SPEC_SECRET, other_id, body, now=NOW), "no matching")
    # A different timestamp, still within tolerance, breaks the signature too.
    moved = {**headers, "webhook-timestamp": str(NOW + 1)}
    refused(lambda: verify_webhook(SPEC_SECRET, moved, body, now=NOW), "no matching")


def test_stale_and_future_timestamps_are_refused_within_tolerance_both_ways() -> None:
    body = event_body()
    headers = reference_signed(SPEC_SECRET, body)
    verify_webhook(SPEC_SECRET, headers, body, now=NOW + 300)  # the edges are allowed
    verify_webhook(SPEC_SECRET, headers, body, now=NOW - 300)
    refused(lambda: verify_webhook(SPEC_SECRET, headers, body, now=NOW + 301), "stale timestamp")
    refused(lambda: verify_webhook(SPEC_SECRET, headers, body, now=NOW - 301), "future timestamp")
    refused(lambda: verify_webhook(SPEC_SECRET, headers, body, now=NOW + 31, tolerance=30), "stale timestamp")
    verify_webhook(SPEC_SECRET, headers, body, now=NOW + 3000, tolerance=3600)
    # Without `now`, the current time applies: a delivery signed now passes, one from 2021 does not.
    fresh = reference_signed(SPEC_SECRET, body, at=int(time.time()))
    verify_webhook(SPEC_SECRET, fresh, body)
    refused(lambda: verify_webhook(SPEC_SECRET, headers, body, now=None), "future timestamp")


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_or_empty_headers_are_refused(missing: str) -> None:
    body = event_body()
    headers = reference_signed(SPEC_SECRET, body)
    without = {name: value for name, value in headers.items() if name != missing}
    refused(lambda: verify_webhook(SPEC_SECRET, without, body, now=NOW), f"missing header.*{missing}")
    empty = {**headers, missing: "  "}
    refused(lambda: verify_webhook(SPEC_SECRET, empty, body, now=NOW), f"missing header.*{missing}")
    refused(lambda: verify_webhook_ed25519(SigningKey.generate().verify_key, without, body, now=NOW), missing)


def test_malformed_timestamps_are_refused() -> None:
    body = event_body()
    for timestamp in ("1.8e9", "-5", "soon", "1800000000.5", "\uff11\uff18\uff10\uff10"):
        headers = {**reference_signed(SPEC_SECRET, body), "webhook-timestamp": timestamp}
        refused(lambda h=headers: verify_webhook(SPEC_SECRET, h, body, now=NOW), "not unix seconds")


def test_signed_bodies_that_are_not_webhook_events_are_refused() -> None:
    for body in ('{"test": 1}', "[1, 2]", "not json", '{"id": "evt_1"}', '{"id": "evt_1", "type": 5}'):
        headers = reference_signed(SPEC_SECRET, body)
        verify_signature(SPEC_SECRET, headers, body, now=NOW)  # the signature itself is fine
        refused(lambda b=body, h=headers: verify_webhook(SPEC_SECRET, h, b, now=NOW), "not a WebhookEvent")
    invalid_utf8 = b'{"id": "evt_1", "type": "x\xff"}'
    digest = hmac.new(hmac_key(SPEC_SECRET), b"evt_1.%d.%s" % (NOW, invalid_utf8), hashlib.sha256).digest()
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(NOW)}
    headers["webhook-signature"] = "v1," + base64.b64encode(digest).decode()
    verify_signature(SPEC_SECRET, headers, invalid_utf8, now=NOW)
    refused(lambda: verify_webhook(SPEC_SECRET, headers, invalid_utf8, now=NOW), "not a WebhookEvent")
    # Fields a newer engine may add do not make an event unreadable.
    newer = json.dumps({**json.loads(event_body()), "futureField": {"x": 1}})
    assert (
        verify_webhook(SPEC_SECRET, reference_signed(SPEC_SECRET, newer), newer, now=NOW).id == "evt_01TEST"
    )


# -- Ed25519 (v1a) -----------------------------------------------------------------------------


def test_ed25519_signatures_verify_under_the_public_key_in_each_form() -> None:
    key = SigningKey.generate()
    body = event_body().encode()
    headers = ed25519_signed(key, body)
    for public in (public_key_of(key), bytes(key.verify_key), key.verify_key):
        event = verify_webhook_ed25519(public, headers, body, now=NOW)
        assert event.id == "evt_01TEST"
    verify_webhook_ed25519(public_key_of(key), headers, body.decode(), now=NOW)
    # Next to v1 signatures and garbage, the one v1a signature is found.
    mixed = {**headers, "webhook-signature": "v1,AAAA v1a,short " + headers["webhook-signature"]}
    verify_signature_ed25519(public_key_of(key), mixed, body, now=NOW)


def test_ed25519_refusals() -> None:
    key = SigningKey.generate()
    body = event_body().encode()
    headers = ed25519_signed(key, body)
    public = public_key_of(key)
    other = public_key_of(SigningKey.generate())
    refused(lambda: verify_webhook_ed25519(other, headers, body, now=NOW), "no matching v1a")
    refused(lambda: verify_webhook_ed25519(public, headers, body + b" ", now=NOW), "no matching v1a")
    refused(lambda: verify_webhook_ed25519(public, headers, body, now=NOW + 301), "stale")
    refused(lambda: verify_webhook_ed25519(public, headers, body, now=NOW - 301), "future")
    hmac_only = reference_signed(SPEC_SECRET, body.decode())
    refused(lambda: verify_webhook_ed25519(public, hmac_only, body, now=NOW), "no matching v1a")
    # A v1a signature is no HMAC signature either.
    refused(lambda: verify_webhook(SPEC_SECRET, headers, body, now=NOW), "no matching v1 signature")
    with pytest.raises(ValueError, match="32 bytes"):
        verify_webhook_ed25519("whpk_" + base64.b64encode(b"short").decode(), headers, body, now=NOW)
    with pytest.raises(ValueError, match="base64"):
        verify_webhook_ed25519("whpk_not base64!", headers, body, now=NOW)


# -- real deliveries from a live engine ---------------------------------------------------------


def verify_both(request: Received, secret: str, public_key: str) -> webhook_pb2.WebhookEvent:
    event = verify_webhook(secret, request.headers, request.body)
    assert verify_webhook_ed25519(public_key, request.headers, request.body) == event
    assert event.id == request.webhook_id
    return event


@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, SPEC_SECRET])
def test_real_deliveries_verify_with_hmac_and_ed25519(
    start_engine: Callable[..., LiveEngine], secret: str
) -> None:
    live = start_engine("sqlite")
    with WebhookReceiver() as receiver, RegistrationClient(live.target, PSK) as registry:
        registration = registry.register("agency-hooks", "Hooks", receiver.url, secret)
        with EngineClient(live.target, registration.api_key) as client:
            public_key = client.get_webhook_signing_key()
            client.send_test_webhook(note="hello receiver")
            session = client.create_session("tenant-1")
            client.start_session(session.session_id)
            client.wait_for_status(session.session_id, "WORKING", timeout=8, poll_interval=0.02)
            inbound = client.simulate_inbound_message(session.session_id, "15550002222", "Is it open?")

            def arrived(requests: list[Received]) -> bool:
                return any(
                    b'"messageReceived"' in r.body and inbound.message_id.encode() in r.body for r in requests
                )

            requests = receiver.wait_until(arrived, timeout=8, what="the message.received webhook")
            events = [verify_both(request, secret, public_key) for request in requests]
            types = {event.type for event in events}
            assert {"webhook.test", "session.status", "message.received"} <= types
            note = next(e for e in events if e.type == "webhook.test").test.note
            assert note == "hello receiver"
            received = next(e for e in events if e.type == "message.received")
            assert received.message_received.message.text == "Is it open?"
            assert received.session_id == session.session_id and received.tenant_id == "tenant-1"

            # Tampering with a real delivery, or verifying it with the wrong secret or key, fails.
            request = requests[0]
            refused(lambda: verify_webhook(secret, request.headers, request.body + b" "), "no matching")
            refused(lambda: verify_webhook(PLAIN_SECRET, request.headers, request.body), "no matching")
            other = public_key_of(SigningKey.generate())
            refused(lambda: verify_webhook_ed25519(other, request.headers, request.body), "no matching")
            refused(
                lambda: verify_webhook(secret, request.headers, request.body, now=time.time() + 600),
                "stale timestamp",
            )


def test_real_deliveries_during_a_secret_rotation_verify_under_either_secret(
    start_engine: Callable[..., LiveEngine],
) -> None:
    live = start_engine("sqlite")
    new_secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    with WebhookReceiver() as receiver, RegistrationClient(live.target, PSK) as registry:
        registration = registry.register("agency-rot", "Rot", receiver.url, WEBHOOK_SECRET)
        registry.update_config("agency-rot", webhook_secret=new_secret)
        with EngineClient(live.target, registration.api_key) as client:
            client.send_test_webhook(note="rotating")
            (request,) = receiver.wait_for(1)
    assert len([s for s in request.signatures if s.startswith("v1,")]) == 2
    verify_webhook(WEBHOOK_SECRET, request.headers, request.body)
    verify_webhook(new_secret, request.headers, request.body)
    refused(lambda: verify_webhook(PLAIN_SECRET, request.headers, request.body), "no matching")
