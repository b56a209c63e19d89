"""Resource ids: a type prefix and a time-ordered random part (`ses_01J...`).

The random part is a ULID (48-bit millisecond time, 80 random bits, Crockford base32), so
ids sort by creation time, never repeat, and say nothing about the resource beyond its type.
Within one process ids are strictly increasing: in the same millisecond (or if the clock
steps back) the previous id's random part is incremented, as ULID's monotonic mode does.
"""

from __future__ import annotations

import secrets
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    """A new id such as `ses_01JD3Q7T3XG0S8N2A6V5QK9ZB4`, greater than every id made before it here."""
    global _last
    candidate = (time.time_ns() // 1_000_000) << _RANDOM_BITS | secrets.randbits(_RANDOM_BITS)
    with _lock:
        if candidate >> _RANDOM_BITS <= _last >> _RANDOM_BITS:
            candidate = _last + 1
        _last = candidate
    value = candidate
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
