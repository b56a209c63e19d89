"""Resource ids: a type prefix and a time-ordered random part (`ses_01J...`).

The random part is a ULID (48-bit millisecond time, 80 random bits, Crockford base32), so
ids sort by creation time, never repeat, and say nothing about the resource beyond its type.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    """A new id such as `ses_01JD3Q7T3XG0S8N2A6V5QK9ZB4`."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
