"""Request ids: the caller's own when it is usable, otherwise a new one."""

from __future__ import annotations

import itertools
import secrets

MAX_LENGTH = 128

# Ids only need to be unique, not secret: a random per-process prefix and a counter are
# enough, and far cheaper than asking the OS for randomness on every request.
_PREFIX = "req_" + secrets.token_hex(4)
_numbers = itertools.count(1)


def new_request_id() -> str:
    """A fresh id, unique within this process and very likely across processes."""
    return f"{_PREFIX}{next(_numbers):08x}"


def usable(given: str) -> bool:
    """True for printable ASCII of 1 to MAX_LENGTH characters (what gRPC metadata accepts)."""
    return 0 < len(given) <= MAX_LENGTH and given.isascii() and given.isprintable()


def request_id_from(given: str | None) -> str:
    """`given` when usable, otherwise a new id."""
    return given if given and usable(given) else new_request_id()
