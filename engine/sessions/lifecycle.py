"""Rules of the session lifecycle (WAHA's) and of message statuses; chat id normalization."""

from __future__ import annotations

import re

from engine.errors import FailedPrecondition

STOPPED = "STOPPED"
STARTING = "STARTING"
SCAN_QR_CODE = "SCAN_QR_CODE"
WORKING = "WORKING"
FAILED = "FAILED"
SESSION_STATUSES = (STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED)

PENDING = "PENDING"
SENT = "SENT"
DELIVERED = "DELIVERED"
READ = "READ"
MESSAGE_FAILED = "FAILED"
RECEIVED = "RECEIVED"

# A message only moves forward: a late "delivered" never overwrites "read".
_PROGRESS = {PENDING: 0, SENT: 1, DELIVERED: 2, READ: 3}

_CAN_START = frozenset({STOPPED, FAILED})
_CAN_STOP = frozenset({STARTING, SCAN_QR_CODE, WORKING, FAILED})


def require_startable(status: str) -> None:
    """STOPPED or FAILED sessions may start."""
    if status not in _CAN_START:
        raise _refused("start", status, "it must be STOPPED or FAILED")


def require_stoppable(status: str) -> None:
    """Any running or failed session may stop."""
    if status not in _CAN_STOP:
        raise _refused("stop", status, "it is not running")


def require_logged_in(status: str, account_id: str) -> None:
    """Only a paired session can log out."""
    if not account_id and status != WORKING:
        raise _refused("log out", status, "it is not paired with an account")


def require_status(action: str, status: str, wanted: str) -> None:
    """Refuse `action` unless the session is in `wanted`."""
    if status != wanted:
        raise _refused(action, status, f"it must be {wanted}")


def _refused(action: str, status: str, why: str) -> FailedPrecondition:
    return FailedPrecondition(f"cannot {action} the session: its status is {status}; {why}")


def next_message_status(current: str, reported: str) -> str:
    """The status a message takes when the provider reports `reported` while it is `current`."""
    if reported == MESSAGE_FAILED:
        return MESSAGE_FAILED if current in (PENDING, SENT) else current
    if current in _PROGRESS and reported in _PROGRESS and _PROGRESS[reported] > _PROGRESS[current]:
        return reported
    return current


_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{4,30}")
_CHAT_ID = re.compile(r"[0-9A-Za-z._:-]{1,80}@(c\.us|g\.us|s\.whatsapp\.net|lid|newsletter)")


def chat_id_of(value: str) -> str | None:
    """WhatsApp chat id for a phone number (`+1 555 000 1111` → `15550001111@c.us`) or a chat id."""
    value = value.strip()
    if _CHAT_ID.fullmatch(value):
        return value
    if _PHONE.fullmatch(value):
        digits = "".join(c for c in value if c.isdigit())
        if 5 <= len(digits) <= 20:
            return f"{digits}@c.us"
    return None
