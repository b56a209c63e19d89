"""Opaque page tokens for keyset pagination, and page-size limits."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from engine.errors import invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Our tokens hold one small position; anything longer is not one of ours.
MAX_TOKEN_LENGTH = 4096


def page_size(requested: int) -> int:
    """The page size to use: default when 0, at most MAX_PAGE_SIZE; negative is invalid."""
    if requested < 0:
        raise invalid("pageSize", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(position: dict[str, Any]) -> str:
    """An opaque token that resumes listing after `position`."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any] | None:
    """The position inside `token` (None for the first page); INVALID_ARGUMENT if it is not ours."""
    if not token:
        return None
    position = None
    if len(token) <= MAX_TOKEN_LENGTH:
        try:
            position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, RecursionError):
            position = None
    if not isinstance(position, dict):
        raise invalid("pageToken", "is not a token returned by this API")
    return position


def token_position(token: str, key: str) -> str | None:
    """The `key` position inside `token` (None for the first page); INVALID_ARGUMENT if it is not ours."""
    position = decode_token(token)
    if position is None:
        return None
    value = position.get(key)
    if not isinstance(value, str):
        raise invalid("pageToken", "is not a token returned by this API")
    return value
