"""Webhook signatures against the Standard Webhooks reference.

Signatures are checked with the `standardwebhooks` library (the reference verifier every
dashboard may use) and, for the asymmetric `v1a` signature, with PyNaCl against the
engine's published `whpk_` public key.
"""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from engine.webhooks.signing import (
    EngineSigner,
    hmac_key_of,
    sign_hmac,
    signature_header,
    signed_content,
)

# The test vector of the Standard Webhooks specification (and of every reference library).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

PLAIN_SECRET = "plain-dashboard-secret-0123456789abcdef"
OTHER_PLAIN_SECRET = "another-dashboard-secret-9876543210zyx"
BODY = '{"id":"evt_1","type":"webhook.test","data":"caf\u00e9 \u2713"}'.encode()


def headers_of(event_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def entries(header: str, version: str) -> list[str]:
    """The base64 signatures of one version in a `webhook-signature` value."""
    return [part.split(",", 1)[1] for part in header.split(" ") if part.split(",", 1)[0] == version]


def verify_v1a(public_key: str, event_id: str, timestamp: int, body: bytes, header: str) -> None:
    """Raise BadSignatureError unless the header's `v1a` signature verifies under `public_key`."""
    assert public_key.startswith("whpk_")
    key = VerifyKey(base64.b64decode(public_key.removeprefix("whpk_")))
    (signature,) = entries(header, "v1a")
    key.verify(signed_content(event_id, timestamp, body), base64.b64decode(signature))


# -- symmetric signatures (v1) --------------------------------------------------------------------


def test_the_specification_test_vector() -> None:
    assert sign_hmac(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    # The reference library agrees (so the vector is copied right).
    stamp = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=UTC)
    assert Webhook(SPEC_SECRET).sign(SPEC_ID, stamp, SPEC_BODY.decode()) == SPEC_SIGNATURE
    assert signature_header([SPEC_SECRET], None, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_whsec_secrets_are_base64_decoded() -> None:
    assert hmac_key_of(SPEC_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def test_a_current_signature_passes_the_reference_verifier() -> None:
    now = int(time.time())
    header = signature_header([SPEC_SECRET], None, "evt_now", now, BODY)
    parsed = Webhook(SPEC_SECRET).verify(BODY, headers_of("evt_now", now, header))
    assert parsed["type"] == "webhook.test"
    # Any change to the id, the timestamp or the body breaks it.
    for event_id, stamp, body in (
        ("evt_other", now, BODY),
        ("evt_now", now - 1, BODY),
        ("evt_now", now, b"{}"),
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(SPEC_SECRET).verify(body, headers_of(event_id, stamp, header))


def test_plain_secrets_are_used_as_their_utf8_bytes() -> None:
    secret = "pl\u00e4in-secret-with-\u00fcmlauts-0123456789abcdef"
    assert hmac_key_of(secret) == secret.encode("utf-8")
    assert hmac_key_of(PLAIN_SECRET) == PLAIN_SECRET.encode()
    now = int(time.time())
    for plain in (secret, PLAIN_SECRET):
        header = signature_header([plain], None, "evt_plain", now, BODY)
        Webhook(plain.encode("utf-8")).verify(BODY, headers_of("evt_plain", now, header))
        with pytest.raises(WebhookVerificationError):
            Webhook(OTHER_PLAIN_SECRET.encode()).verify(BODY, headers_of("evt_plain", now, header))


def test_a_secret_like_whsec_but_without_the_underscore_is_plain() -> None:
    # The test suite's own WEBHOOK_SECRET looks like this.
    secret = "whsec-test-0123456789abcdefghijklmnopqrstuv"
    assert hmac_key_of(secret) == secret.encode()


def test_several_secrets_give_one_v1_signature_each_and_every_one_verifies() -> None:
    now = int(time.time())
    header = signature_header([PLAIN_SECRET, SPEC_SECRET], None, "evt_rot", now, BODY)
    parts = header.split(" ")
    assert len(parts) == 2 and all(part.startswith("v1,") for part in parts)
    assert parts[0] == sign_hmac(PLAIN_SECRET, "evt_rot", now, BODY)
    assert parts[1] == sign_hmac(SPEC_SECRET, "evt_rot", now, BODY)
    headers = headers_of("evt_rot", now, header)
    Webhook(PLAIN_SECRET.encode()).verify(BODY, headers)
    Webhook(SPEC_SECRET).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_PLAIN_SECRET.encode()).verify(BODY, headers)


# -- asymmetric signature (v1a) -------------------------------------------------------------------


def test_v1a_verifies_with_the_public_key() -> None:
    signer = EngineSigner(bytes(range(32)))
    now = int(time.time())
    header = signature_header([PLAIN_SECRET], signer, "evt_a", now, BODY)
    parts = header.split(" ")
    assert [part.split(",")[0] for part in parts] == ["v1", "v1a"]
    verify_v1a(signer.public_key, "evt_a", now, BODY, header)
    # The reference verifier still finds its v1 signature next to the v1a one.
    Webhook(PLAIN_SECRET.encode()).verify(BODY, headers_of("evt_a", now, header))
    # The public key is the raw 32-byte Ed25519 key.
    assert len(base64.b64decode(signer.public_key.removeprefix("whpk_"))) == 32


def test_v1a_fails_for_other_content_or_another_key() -> None:
    signer = EngineSigner(bytes(range(32)))
    other = EngineSigner(bytes(range(1, 33)))
    now = int(time.time())
    header = signature_header([], signer, "evt_b", now, BODY)
    assert header.startswith("v1a,") and " " not in header
    with pytest.raises(BadSignatureError):
        verify_v1a(other.public_key, "evt_b", now, BODY, header)
    with pytest.raises(BadSignatureError):
        verify_v1a(signer.public_key, "evt_b", now, BODY + b" ", header)
    with pytest.raises(BadSignatureError):
        verify_v1a(signer.public_key, "evt_c", now, BODY, header)


def test_the_signing_key_is_stable_for_a_seed() -> None:
    seed = b"s" * 32
    assert EngineSigner(seed).public_key == EngineSigner(seed).public_key
    assert EngineSigner(seed).public_key != EngineSigner(b"t" * 32).public_key
    # Ed25519 is deterministic: the same content gives the same signature.
    assert EngineSigner(seed).sign("evt", 1, BODY) == EngineSigner(seed).sign("evt", 1, BODY)
