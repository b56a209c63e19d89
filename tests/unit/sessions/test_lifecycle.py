"""The session lifecycle rules, message status progress, chat id normalization, and resource ids."""

from __future__ import annotations

import itertools
import random
import re
import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from engine import ids
from engine.errors import FailedPrecondition
from engine.sessions import lifecycle
from engine.sessions.lifecycle import (
    DELIVERED,
    FAILED,
    MESSAGE_FAILED,
    PENDING,
    READ,
    RECEIVED,
    SCAN_QR_CODE,
    SENT,
    STARTING,
    STOPPED,
    WORKING,
)

# -- session transitions ------------------------------------------------------------------------

#: Statuses every rule is checked against, including one the engine never stores.
STATUSES = (STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED, "UNKNOWN")

#: (rule, statuses it allows); every other status of STATUSES must be refused.
TRANSITIONS: list[tuple[str, Callable[[str], None], frozenset[str]]] = [
    ("start", lifecycle.require_startable, frozenset({STOPPED, FAILED})),
    ("stop", lifecycle.require_stoppable, frozenset({STARTING, SCAN_QR_CODE, WORKING, FAILED})),
    (
        "qr",
        lambda status: lifecycle.require_status("show a QR code for", status, SCAN_QR_CODE),
        frozenset({SCAN_QR_CODE}),
    ),
    ("send", lambda status: lifecycle.require_status("send from", status, WORKING), frozenset({WORKING})),
]

TRANSITION_CASES = [
    pytest.param(rule, status, status in allowed, id=f"{name}-from-{status}")
    for name, rule, allowed in TRANSITIONS
    for status in STATUSES
]


def test_session_statuses_are_the_proto_enum_names() -> None:
    from workflow_engine.v1 import common_pb2

    names = {v.name.removeprefix("SESSION_STATUS_") for v in common_pb2.SessionStatus.DESCRIPTOR.values}
    assert set(lifecycle.SESSION_STATUSES) == names - {"UNSPECIFIED"}


@pytest.mark.parametrize(("rule", "status", "allowed"), TRANSITION_CASES)
def test_transition_rules(rule: Callable[[str], None], status: str, allowed: bool) -> None:
    if allowed:
        rule(status)
        return
    with pytest.raises(FailedPrecondition) as refused:
        rule(status)
    # The caller learns the current status from the message.
    assert f"its status is {status};" in refused.value.message


@pytest.mark.parametrize(
    ("status", "account_id", "allowed"),
    [
        (STOPPED, "", False),
        (STARTING, "", False),
        (SCAN_QR_CODE, "", False),
        (FAILED, "", False),
        (WORKING, "", True),  # a WORKING session is paired even before its account is known
        (STOPPED, "15550001111", True),  # stopped sessions stay paired
        (STARTING, "15550001111", True),
        (FAILED, "15550001111", True),
        (WORKING, "15550001111", True),
    ],
)
def test_logout_needs_a_paired_session(status: str, account_id: str, allowed: bool) -> None:
    if allowed:
        lifecycle.require_logged_in(status, account_id)
        return
    with pytest.raises(FailedPrecondition) as refused:
        lifecycle.require_logged_in(status, account_id)
    assert f"its status is {status};" in refused.value.message
    assert "log out" in refused.value.message


# -- message status progress ----------------------------------------------------------------------

MESSAGE_STATUSES = (PENDING, SENT, DELIVERED, READ, MESSAGE_FAILED, RECEIVED)

#: EXPECTED[current][reported]: the status a message takes. Written out in full on purpose.
EXPECTED = {
    PENDING: {
        PENDING: PENDING,
        SENT: SENT,
        DELIVERED: DELIVERED,
        READ: READ,
        FAILED: FAILED,
        RECEIVED: PENDING,
    },
    SENT: {PENDING: SENT, SENT: SENT, DELIVERED: DELIVERED, READ: READ, FAILED: FAILED, RECEIVED: SENT},
    DELIVERED: {
        PENDING: DELIVERED,
        SENT: DELIVERED,
        DELIVERED: DELIVERED,
        READ: READ,
        FAILED: DELIVERED,  # delivered is proof it did not fail
        RECEIVED: DELIVERED,
    },
    READ: {PENDING: READ, SENT: READ, DELIVERED: READ, READ: READ, FAILED: READ, RECEIVED: READ},
    FAILED: {
        PENDING: FAILED,
        SENT: FAILED,
        DELIVERED: FAILED,
        READ: FAILED,
        FAILED: FAILED,
        RECEIVED: FAILED,
    },
    RECEIVED: {
        PENDING: RECEIVED,
        SENT: RECEIVED,
        DELIVERED: RECEIVED,
        READ: RECEIVED,
        FAILED: RECEIVED,
        RECEIVED: RECEIVED,
    },
}


def test_expected_table_covers_every_pair() -> None:
    assert set(EXPECTED) == set(MESSAGE_STATUSES)
    assert all(set(row) == set(MESSAGE_STATUSES) for row in EXPECTED.values())


@pytest.mark.parametrize(
    ("current", "reported"),
    [pytest.param(c, r, id=f"{c}+{r}") for c, r in itertools.product(MESSAGE_STATUSES, MESSAGE_STATUSES)],
)
def test_next_message_status(current: str, reported: str) -> None:
    assert lifecycle.next_message_status(current, reported) == EXPECTED[current][reported]


def test_unknown_reports_change_nothing() -> None:
    for current in MESSAGE_STATUSES:
        assert lifecycle.next_message_status(current, "PLAYED") == current


def test_acks_in_any_order_end_at_the_furthest_status() -> None:
    for order in itertools.permutations((SENT, DELIVERED, READ)):
        status = PENDING
        for reported in order:
            status = lifecycle.next_message_status(status, reported)
        assert status == READ, order


# -- chat ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "chat_id"),
    [
        ("+1 555 000 2222", "15550002222@c.us"),
        ("15550002222", "15550002222@c.us"),
        ("  +15550002222\t", "15550002222@c.us"),
        ("+1 (555) 000-2222", "15550002222@c.us"),
        ("1.555.000.2222", "15550002222@c.us"),
        ("+44 20 7946 0958", "442079460958@c.us"),
        ("12345", "12345@c.us"),  # the shortest number
        ("1" * 20, "1" * 20 + "@c.us"),  # the longest number
        ("15550002222@c.us", "15550002222@c.us"),
        ("120363025246125486@g.us", "120363025246125486@g.us"),
        ("15550002222@s.whatsapp.net", "15550002222@s.whatsapp.net"),
        ("12345678901234@lid", "12345678901234@lid"),
        ("120363025246125486@newsletter", "120363025246125486@newsletter"),
        (" 15550002222@c.us ", "15550002222@c.us"),
        ("a" * 80 + "@c.us", "a" * 80 + "@c.us"),
    ],
)
def test_chat_id_of_valid(value: str, chat_id: str) -> None:
    assert lifecycle.chat_id_of(value) == chat_id


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "+",
        "1234",  # too short
        "1" * 21,  # too many digits
        "+1 555 000 2222 ext 5",
        "++15550002222",
        "hello",
        "not a phone",
        "1555\n0002222",
        "15550002222@example.com",
        "15550002222@c.us.evil",
        "user name@c.us",
        "a" * 81 + "@c.us",
        "@c.us",
        "+1 555 000 2222@c.us",
    ],
)
def test_chat_id_of_invalid(value: str) -> None:
    assert lifecycle.chat_id_of(value) is None


# -- ids ------------------------------------------------------------------------------------------

CROCKFORD = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


@pytest.fixture(autouse=True)
def fresh_id_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start each test with no id made before, so a mocked clock in the past is honoured."""
    monkeypatch.setattr(ids, "_last", 0)


def use_clock(monkeypatch: pytest.MonkeyPatch, time_ns: Callable[[], int]) -> None:
    """Make `engine.ids` (only) read the time from `time_ns`; the rest of the process keeps the real clock."""
    monkeypatch.setattr(ids, "time", SimpleNamespace(time_ns=time_ns))


def _time_of(identifier: str) -> int:
    """The millisecond timestamp encoded in an id's first 10 characters."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for char in identifier.partition("_")[2][:10]:
        value = value * 32 + alphabet.index(char)
    return value


@pytest.mark.parametrize("prefix", ["ses", "msg", "cnv", "sbxevt"])
def test_new_id_has_its_prefix_and_length(prefix: str) -> None:
    identifier = ids.new_id(prefix)
    head, sep, tail = identifier.partition("_")
    assert (head, sep) == (prefix, "_")
    assert len(identifier) == len(prefix) + 1 + 26
    assert CROCKFORD.fullmatch(tail), tail


def test_new_id_encodes_the_current_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    now_ms = 1_700_000_123_456
    use_clock(monkeypatch, lambda: now_ms * 1_000_000 + 999_999)
    assert _time_of(ids.new_id("ses")) == now_ms


def test_new_ids_sort_by_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Strictly increasing milliseconds, with steps from 1 ms to years, in a shuffled generation.
    rng = random.Random(7)  # noqa: S311 (a reproducible shuffle, not a secret)
    moments = sorted({rng.randrange(1, 2**47) for _ in range(300)} | {1_700_000_000_000, 1_700_000_000_001})
    made = []
    for ms in moments:
        use_clock(monkeypatch, lambda ms=ms: ms * 1_000_000)
        made.append(ids.new_id("msg"))
    shuffled = made[:]
    rng.shuffle(shuffled)
    assert sorted(shuffled) == made


def test_new_ids_sort_by_time_on_the_real_clock() -> None:
    first = ids.new_id("ses")
    start = _time_of(first)
    deadline = time.monotonic() + 2.0
    while _time_of(later := ids.new_id("ses")) == start:
        assert time.monotonic() < deadline, "ids stopped following the clock"
    assert later > first


def test_new_ids_are_unique() -> None:
    made = [ids.new_id("ses") for _ in range(20_000)]
    assert len(set(made)) == len(made)


def test_new_ids_are_unique_within_one_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    use_clock(monkeypatch, lambda: 1_700_000_000_000 * 1_000_000)
    made = [ids.new_id("ses") for _ in range(5_000)]
    assert len(set(made)) == len(made)


def test_ids_made_within_one_millisecond_sort_in_creation_order(monkeypatch: pytest.MonkeyPatch) -> None:
    use_clock(monkeypatch, lambda: 1_700_000_000_000 * 1_000_000)
    made = [ids.new_id("msg") for _ in range(100)]
    assert sorted(made) == made


def test_ids_keep_increasing_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([2_000_000_000_000, 1_999_999_999_000, 2_000_000_000_000])
    use_clock(monkeypatch, lambda: next(clock) * 1_000_000)
    made = [ids.new_id("msg") for _ in range(3)]
    assert sorted(made) == made
    assert len(set(made)) == 3
