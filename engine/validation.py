"""Field validators shared by the domain services. Each returns a description or None."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from engine.errors import FieldViolation, InvalidArgument

AGENCY_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIN_WEBHOOK_SECRET_LENGTH = 32
MAX_WEBHOOK_SECRET_LENGTH = 512
MAX_URL_LENGTH = 2048
# C0/C1 control characters: never meaningful in names, URLs or secrets, and PostgreSQL rejects NUL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def agency_id_problem(value: str) -> str | None:
    """Letters, digits, `_` and `-`; 1 to 64 characters."""
    if not AGENCY_ID_PATTERN.fullmatch(value):
        return "must be 1-64 characters of letters, digits, '_' or '-'"
    return None


def text_problem(value: str, maximum: int) -> str | None:
    """Non-blank text of at most `maximum` characters."""
    if not value.strip():
        return "must not be empty"
    if len(value) > maximum:
        return f"must be at most {maximum} characters"
    if CONTROL_CHARACTERS.search(value):
        return "must not contain control characters"
    return None


def url_problem(value: str) -> str | None:
    """An absolute http or https URL with a host."""
    if len(value) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if CONTROL_CHARACTERS.search(value):
        return "must not contain control characters"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return "must be an absolute http or https URL"
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or any(c.isspace() for c in value)
    ):
        return "must be an absolute http or https URL"
    return None


def webhook_secret_problem(value: str) -> str | None:
    """At least 32 characters (as the seed requires), at most 512, no whitespace at the ends."""
    if len(value) < MIN_WEBHOOK_SECRET_LENGTH:
        return f"must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters"
    if len(value) > MAX_WEBHOOK_SECRET_LENGTH:
        return f"must be at most {MAX_WEBHOOK_SECRET_LENGTH} characters"
    if value != value.strip():
        return "must not start or end with whitespace"
    if CONTROL_CHARACTERS.search(value):
        return "must not contain control characters"
    return None


class Violations:
    """Collects every bad field of a request, then raises them together."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def check(self, field: str, problem: str | None) -> None:
        """Record `problem` for `field` when there is one."""
        if problem is not None:
            self._items.append(FieldViolation(field, problem))

    def raise_if_any(self) -> None:
        """Raise InvalidArgument naming every recorded field."""
        if self._items:
            summary = "; ".join(f"{v.field}: {v.description}" for v in self._items)
            raise InvalidArgument(f"invalid request: {summary}", list(self._items))
