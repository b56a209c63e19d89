"""Webhook signatures against the Standard Webhooks reference, the retry policy, the SSRF guard.

Signatures are checked with the `standardwebhooks` library (the reference verifier every
dashboard may use) and, for the asymmetric `v1a` signature, with PyNaCl against the
engine's published `whpk_` public key.
"""

from __future__ import annotations

import base64
import email.utils
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from engine.webhooks.dispatcher import RetryPolicy, _retry_after_seconds
from engine.webhooks.signing import (
    EngineSigner,
    hmac_key_of,
    sign_hmac,
    signature_header,
    signed_content,
)
from engine.webhooks.targets import TargetRefused, check_destination

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


# -- retry policy -----------------------------------------------------------------------------------


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (retry jitter, not cryptography)


class EdgeRandom(random.Random):
    """A Random whose uniform(a, b) returns a fixed end (or the middle) of the range."""

    def __init__(self, where: str) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return {"low": a, "high": b, "middle": (a + b) / 2}[self.where]


SCHEDULE = (10.0, 100.0, 1000.0)


def test_one_attempt_per_scheduled_delay_plus_the_first() -> None:
    assert RetryPolicy(SCHEDULE).attempts == 4
    assert RetryPolicy(()).attempts == 1


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_the_delay_is_the_schedule_with_twenty_percent_jitter(attempt: int) -> None:
    policy = RetryPolicy(SCHEDULE)
    base = SCHEDULE[attempt - 1]
    assert policy.delay_after(attempt, None, EdgeRandom("low")) == pytest.approx(base * 0.8)
    assert policy.delay_after(attempt, None, EdgeRandom("high")) == pytest.approx(base * 1.2)
    assert policy.delay_after(attempt, None, EdgeRandom("middle")) == pytest.approx(base)
    rng = seeded(attempt)
    delays = [policy.delay_after(attempt, None, rng) for _ in range(500)]
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    # It really is jittered (not always the same value), over most of the range.
    assert min(d for d in delays if d is not None) < base * 0.9
    assert max(d for d in delays if d is not None) > base * 1.1


def test_after_the_last_attempt_there_is_no_delay() -> None:
    policy = RetryPolicy(SCHEDULE)
    assert policy.delay_after(4, None, seeded(1)) is None
    assert policy.delay_after(5, None, seeded(1)) is None
    assert policy.delay_after(4, 30.0, seeded(1)) is None
    assert RetryPolicy(()).delay_after(1, None, seeded(1)) is None


def test_retry_after_lengthens_the_wait() -> None:
    policy = RetryPolicy(SCHEDULE)
    assert policy.delay_after(1, 500.0, EdgeRandom("high")) == pytest.approx(500.0)
    assert policy.delay_after(2, 999.0, EdgeRandom("low")) == pytest.approx(999.0)


def test_retry_after_is_capped_at_the_longest_scheduled_delay() -> None:
    policy = RetryPolicy(SCHEDULE)
    assert policy.delay_after(1, 86_400.0, EdgeRandom("middle")) == pytest.approx(1000.0)
    assert policy.delay_after(3, 5000.0, EdgeRandom("low")) == pytest.approx(1000.0)


def test_retry_after_never_shortens_the_schedule() -> None:
    policy = RetryPolicy(SCHEDULE)
    for where in ("low", "middle", "high"):
        plain = policy.delay_after(2, None, EdgeRandom(where))
        assert policy.delay_after(2, 0.0, EdgeRandom(where)) == pytest.approx(plain)
        assert policy.delay_after(2, 1.0, EdgeRandom(where)) == pytest.approx(plain)


# -- Retry-After parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("0", 0.0), (" 7 ", 7.0)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert _retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date() -> None:
    future = datetime.now(UTC) + timedelta(seconds=90)
    value = email.utils.format_datetime(future, usegmt=True)
    parsed = _retry_after_seconds(value)
    assert parsed is not None and 80 <= parsed <= 90
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert _retry_after_seconds(past) == 0.0
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "later today", "Thu, 99 Foo 2015"])
def test_retry_after_junk_is_ignored(value: str | None) -> None:
    assert _retry_after_seconds(value) is None


# -- SSRF guard -------------------------------------------------------------------------------------

INTERNAL_URLS = [
    "http://127.0.0.1:8080/hooks",
    "http://localhost/hooks",
    "https://[::1]/hooks",
    "http://10.1.2.3/hooks",
    "http://172.16.0.9/hooks",
    "http://192.168.1.20:3000/hooks",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hooks",
    "http://[fd00::1]/hooks",
    "http://0.0.0.0/hooks",
    "http://100.64.0.1/hooks",
    "http://[::ffff:127.0.0.1]/hooks",
    # IPv4 embedded in IPv6: compatible and NAT64 forms.
    "http://[::127.0.0.1]/hooks",
    "http://[64:ff9b::a00:1]/hooks",
    # Other spellings of 127.0.0.1 that resolvers accept.
    "http://2130706433/hooks",
    "http://0177.0.0.1/hooks",
    "http://0x7f.0.0.1/hooks",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_destinations_are_refused(url: str) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        check_destination(url, allow_private_webhook_urls=False)


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_destinations_are_allowed_when_configured(url: str) -> None:
    check_destination(url, allow_private_webhook_urls=True)


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hooks", "http://8.8.8.8:8080/x", "https://[2606:4700::1]/"]
)
def test_public_addresses_are_allowed(url: str) -> None:
    check_destination(url, allow_private_webhook_urls=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.215.14/hooks",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "javascript:alert(1)",
        "http://",
    ],
)
@pytest.mark.parametrize("allow", [False, True])
def test_non_http_urls_are_refused(url: str, allow: bool) -> None:
    with pytest.raises(TargetRefused, match="not an http"):
        check_destination(url, allow_private_webhook_urls=allow)


def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(TargetRefused, match="cannot resolve"):
        check_destination("https://no-such-host.invalid/hooks", allow_private_webhook_urls=False)
