"""Dashboard API keys and constant-time secret comparison."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

# Recognisable prefix so secret scanners (and people) can spot a leaked key.
API_KEY_PREFIX = "wfe_"
_ALPHABET = string.ascii_letters + string.digits
_RANDOM_LENGTH = 40  # 40 base62 characters ≈ 238 bits
VISIBLE_PREFIX_LENGTH = len(API_KEY_PREFIX) + 8


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: the plaintext is shown once, the rest is stored."""

    plaintext: str
    key_id: str
    prefix: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    """Create a random API key with its id, visible prefix and SHA-256 hash."""
    plaintext = API_KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LENGTH))
    return NewApiKey(
        plaintext=plaintext,
        key_id="key_" + secrets.token_hex(12),
        prefix=plaintext[:VISIBLE_PREFIX_LENGTH],
        key_hash=hash_api_key(plaintext),
    )


def hash_api_key(plaintext: str) -> str:
    """SHA-256 of the key, hex: the only form in which keys are stored."""
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


_API_KEY_SHAPE = re.compile(re.escape(API_KEY_PREFIX) + f"[A-Za-z0-9]{{{_RANDOM_LENGTH}}}")


def looks_like_api_key(value: str) -> bool:
    """Cheap shape check, so obviously wrong values skip the database."""
    return _API_KEY_SHAPE.fullmatch(value) is not None


def secrets_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets (False when either is empty)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A 32-byte key for one `purpose`, derived from ENGINE_SECRET_KEY (so no more secrets to configure)."""
    return hmac.new(
        secret_key.encode("utf-8"), f"workflow-engine/{purpose}/v1".encode(), hashlib.sha256
    ).digest()


def derive_gateway_token(secret_key: str) -> str:
    """The token by which the REST gateway proves itself to the gRPC server.

    Derived from ENGINE_SECRET_KEY, so `engine serve` and a separate `engine gateway`
    with the same environment agree without another secret to configure.
    """
    return hmac.new(secret_key.encode("utf-8"), b"workflow-engine/gateway/v1", hashlib.sha256).hexdigest()
