"""Standard Webhooks signatures (https://www.standardwebhooks.com).

Every delivery carries `webhook-id`, `webhook-timestamp` and `webhook-signature`. The
signed content is `{id}.{timestamp}.{body}`. Symmetric signatures (`v1,<base64>`) are
HMAC-SHA256 under the dashboard's webhook secret; the asymmetric one (`v1a,<base64>`)
is Ed25519 under the engine's own key, whose public half (`whpk_...`) anyone may fetch.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from nacl.signing import SigningKey

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of the format, not a secret)
PUBLIC_KEY_PREFIX = "whpk_"


def hmac_key_of(secret: str) -> bytes:
    """The HMAC key of a webhook secret: `whsec_<base64>` is decoded as the spec says;
    any other secret is used as its UTF-8 bytes."""
    if secret.startswith(SECRET_PREFIX):
        try:
            decoded = base64.b64decode(secret[len(SECRET_PREFIX) :] + "==", validate=False)
        except (binascii.Error, ValueError):
            decoded = b""
        if decoded:
            return decoded
    return secret.encode("utf-8")


def signed_content(event_id: str, timestamp: int, body: bytes) -> bytes:
    """The bytes every signature covers."""
    return f"{event_id}.{timestamp}.".encode() + body


def sign_hmac(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """A `v1,<base64 HMAC-SHA256>` signature."""
    digest = hmac.new(hmac_key_of(secret), signed_content(event_id, timestamp, body), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class EngineSigner:
    """The engine's Ed25519 key, derived from ENGINE_SECRET_KEY so every replica signs alike."""

    def __init__(self, seed: bytes) -> None:
        self._key = SigningKey(seed[:32])

    @property
    def public_key(self) -> str:
        """The public key in Standard Webhooks form: `whpk_<base64>`."""
        return PUBLIC_KEY_PREFIX + base64.b64encode(bytes(self._key.verify_key)).decode()

    def sign(self, event_id: str, timestamp: int, body: bytes) -> str:
        """A `v1a,<base64 Ed25519>` signature."""
        signature = self._key.sign(signed_content(event_id, timestamp, body)).signature
        return "v1a," + base64.b64encode(signature).decode()


def signature_header(
    secrets: Iterable[str], signer: EngineSigner | None, event_id: str, timestamp: int, body: bytes
) -> str:
    """The `webhook-signature` value: one `v1` per secret (old and new while rotating), then `v1a`."""
    signatures = [sign_hmac(secret, event_id, timestamp, body) for secret in secrets]
    if signer is not None:
        signatures.append(signer.sign(event_id, timestamp, body))
    return " ".join(signatures)
