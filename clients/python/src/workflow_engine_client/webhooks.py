"""Verifying the engine's webhooks (Standard Webhooks, https://www.standardwebhooks.com).

Each delivery carries three headers:

    webhook-id: evt_...                 the event id, the same on every retry
    webhook-timestamp: 1795796411       unix seconds of this attempt
    webhook-signature: v1,<base64> v1a,<base64>

`v1` is HMAC-SHA256 of `{id}.{timestamp}.{body}` under the dashboard's webhook secret (a
`whsec_<base64>` secret is base64-decoded; any other secret is used as its UTF-8 bytes).
While a secret is being rotated there is one `v1` per secret. `v1a` is Ed25519 over the same
bytes under the engine's key, whose public key (`whpk_<base64>`) `EngineClient.
get_webhook_signing_key()` returns. Any one matching signature of the right kind passes.

Verify the exact bytes received, before parsing or re-encoding them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Protocol

from google.protobuf import json_format
from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import VerifyKey

from workflow_engine.v1 import webhook_pb2

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of the format, not a secret)
PUBLIC_KEY_PREFIX = "whpk_"
#: Seconds a timestamp may be away from now, in either direction.
DEFAULT_TOLERANCE = 300

_ID = "webhook-id"
_TIMESTAMP = "webhook-timestamp"
_SIGNATURE = "webhook-signature"


class WebhookVerificationError(Exception):
    """The request is not a genuine, fresh webhook from the engine; answer it with a 4xx."""


class SupportsItems(Protocol):
    """Headers: a dict, `http.client.HTTPMessage`, a Starlette/Flask headers object, ..."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def hmac_key(secret: str | bytes) -> bytes:
    """The HMAC key of a webhook secret: bytes as they are; `whsec_<base64>` base64-decoded;
    any other string (or a `whsec_` one that does not decode) as its UTF-8 bytes."""
    if isinstance(secret, bytes):
        key = secret
    else:
        key = secret.encode("utf-8")
        if secret.startswith(SECRET_PREFIX):
            try:
                decoded = base64.b64decode(secret[len(SECRET_PREFIX) :] + "==", validate=False)
            except (binascii.Error, ValueError):
                decoded = b""
            if decoded:
                key = decoded
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def _public_key(public_key: str | bytes | VerifyKey) -> VerifyKey:
    if isinstance(public_key, VerifyKey):
        return public_key
    if isinstance(public_key, bytes):
        raw = public_key
    else:
        try:
            raw = base64.b64decode(public_key.removeprefix(PUBLIC_KEY_PREFIX), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the public key is not `whpk_` followed by base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, not {len(raw)}")
    return VerifyKey(bytes(raw))


def _headers(headers: SupportsItems) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


def _body_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _signed_content(
    headers: SupportsItems, body: bytes | str, tolerance: float, now: float | None
) -> tuple[bytes, list[tuple[str, str]]]:
    """Check the headers and the timestamp; return the signed bytes and the (version, signature) entries."""
    found = _headers(headers)
    missing = [name for name in (_ID, _TIMESTAMP, _SIGNATURE) if not found.get(name, "").strip()]
    if missing:
        raise WebhookVerificationError(f"missing header(s): {', '.join(missing)}")
    webhook_id = found[_ID].strip()
    timestamp_text = found[_TIMESTAMP].strip()
    if not timestamp_text.isascii() or not timestamp_text.isdigit():
        raise WebhookVerificationError(f"{_TIMESTAMP} is not unix seconds: {timestamp_text[:40]!r}")
    timestamp = int(timestamp_text)
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise WebhookVerificationError(
            f"stale timestamp: {timestamp} is {current - timestamp:.0f} s old (tolerance {tolerance} s)"
        )
    if timestamp > current + tolerance:
        raise WebhookVerificationError(
            f"future timestamp: {timestamp} is {timestamp - current:.0f} s ahead (tolerance {tolerance} s)"
        )
    entries: list[tuple[str, str]] = []
    for entry in found[_SIGNATURE].split():
        version, comma, signature = entry.partition(",")
        if comma:
            entries.append((version, signature))
    content = f"{webhook_id}.{timestamp_text}.".encode() + _body_bytes(body)
    return content, entries


def _decoded(signature: str) -> bytes | None:
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None


def verify_signature(
    secret: str | bytes,
    headers: SupportsItems,
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a request's `v1` (HMAC-SHA256) signature under `secret`; raise
    WebhookVerificationError unless one of them matches and the timestamp is within
    `tolerance` seconds of `now` (default: the current time). Does not look at the body's content."""
    key = hmac_key(secret)
    content, entries = _signed_content(headers, body, tolerance, now)
    expected = hmac.new(key, content, hashlib.sha256).digest()
    matched = False
    for version, signature in entries:
        if version != "v1":
            continue
        given = _decoded(signature)
        # Compare every entry (no early exit), in constant time each.
        if given is not None and hmac.compare_digest(expected, given):
            matched = True
    if not matched:
        raise WebhookVerificationError("no matching v1 signature for this secret")


def verify_signature_ed25519(
    public_key: str | bytes | VerifyKey,
    headers: SupportsItems,
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a request's `v1a` (Ed25519) signature under the engine's public key (`whpk_...`,
    its 32 raw bytes, or a `VerifyKey`); raise WebhookVerificationError unless one matches and
    the timestamp is fresh."""
    key = _public_key(public_key)
    content, entries = _signed_content(headers, body, tolerance, now)
    for version, signature in entries:
        if version != "v1a":
            continue
        given = _decoded(signature)
        if given is None or len(given) != 64:
            continue
        try:
            key.verify(content, given)
        except (BadSignatureError, NaclValueError):
            continue
        return
    raise WebhookVerificationError("no matching v1a signature for this public key")


def parse_event(body: bytes | str) -> webhook_pb2.WebhookEvent:
    """The WebhookEvent in a (verified) body. Unknown fields are ignored, so events from a newer
    engine still parse; a body without an `id` and a `type` is refused."""
    try:
        text = _body_bytes(body).decode("utf-8")
        event = json_format.Parse(text, webhook_pb2.WebhookEvent(), ignore_unknown_fields=True)
    except (UnicodeDecodeError, json_format.ParseError) as error:
        raise WebhookVerificationError(f"the body is not a WebhookEvent: {error}") from None
    if not event.id or not event.type:
        raise WebhookVerificationError("the body is not a WebhookEvent: it has no id or no type")
    return event


def verify_webhook(
    secret: str | bytes,
    headers: SupportsItems,
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> webhook_pb2.WebhookEvent:
    """Verify a delivery with the dashboard's webhook secret (`v1`) and return its event."""
    verify_signature(secret, headers, body, tolerance=tolerance, now=now)
    return parse_event(body)


def verify_webhook_ed25519(
    public_key: str | bytes | VerifyKey,
    headers: SupportsItems,
    body: bytes | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> webhook_pb2.WebhookEvent:
    """Verify a delivery with the engine's public key (`v1a`) and return its event."""
    verify_signature_ed25519(public_key, headers, body, tolerance=tolerance, now=now)
    return parse_event(body)
