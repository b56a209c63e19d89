"""The retry policy: the schedule with its jitter, Retry-After's effect, and parsing Retry-After."""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime, timedelta

import pytest

from engine.work.retry import RetryPolicy, retry_after_seconds

# -- retry policy -----------------------------------------------------------------------------------


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 (retry jitter, not cryptography)


class EdgeRandom(random.Random):
    """A Random whose uniform(a, b) returns a fixed end (or the middle) of the range."""

    def __init__(self, where: str) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return {"low": a, "high": b, "middle": (a + b) / 2}[self.where]


SCHEDULE = (10.0, 100.0, 1000.0)


def test_one_attempt_per_scheduled_delay_plus_the_first() -> None:
    assert RetryPolicy(SCHEDULE).attempts == 4
    assert RetryPolicy(()).attempts == 1


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_the_delay_is_the_schedule_with_twenty_percent_jitter(attempt: int) -> None:
    policy = RetryPolicy(SCHEDULE)
    base = SCHEDULE[attempt - 1]
    assert policy.delay_after(attempt, None, EdgeRandom("low")) == pytest.approx(base * 0.8)
    assert policy.delay_after(attempt, None, EdgeRandom("high")) == pytest.approx(base * 1.2)
    assert policy.delay_after(attempt, None, EdgeRandom("middle")) == pytest.approx(base)
    rng = seeded(attempt)
    delays = [policy.delay_after(attempt, None, rng) for _ in range(500)]
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    # It really is jittered (not always the same value), over most of the range.
    assert min(d for d in delays if d is not None) < base * 0.9
    assert max(d for d in delays if d is not None) > base * 1.1


def test_after_the_last_attempt_there_is_no_delay() -> None:
    policy = RetryPolicy(SCHEDULE)
    assert policy.delay_after(4, None, seeded(1)) is None
    assert policy.delay_after(5, None, seeded(1)) is None
    assert policy.delay_after(4, 30.0, seeded(1)) is None
    assert RetryPolicy(()).delay_after(1, None, seeded(1)) is None


def test_retry_after_lengthens_the_wait() -> None:
    policy = RetryPolicy(SCHEDULE)
    assert policy.delay_after(1, 500.0, EdgeRandom("high")) == pytest.approx(500.0)
    assert policy.delay_after(2, 999.0, EdgeRandom("low")) == pytest.approx(999.0)


def test_retry_after_is_capped_at_the_longest_scheduled_delay() -> None:
    policy = RetryPolicy(SCHEDULE)
    assert policy.delay_after(1, 86_400.0, EdgeRandom("middle")) == pytest.approx(1000.0)
    assert policy.delay_after(3, 5000.0, EdgeRandom("low")) == pytest.approx(1000.0)


def test_retry_after_never_shortens_the_schedule() -> None:
    policy = RetryPolicy(SCHEDULE)
    for where in ("low", "middle", "high"):
        plain = policy.delay_after(2, None, EdgeRandom(where))
        assert policy.delay_after(2, 0.0, EdgeRandom(where)) == pytest.approx(plain)
        assert policy.delay_after(2, 1.0, EdgeRandom(where)) == pytest.approx(plain)


# -- Retry-After parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), ("0", 0.0), (" 7 ", 7.0)])
def test_retry_after_in_seconds(value: str, seconds: float) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date() -> None:
    future = datetime.now(UTC) + timedelta(seconds=90)
    value = email.utils.format_datetime(future, usegmt=True)
    parsed = retry_after_seconds(value)
    assert parsed is not None and 80 <= parsed <= 90
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(past) == 0.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3", "later today", "Thu, 99 Foo 2015"])
def test_retry_after_junk_is_ignored(value: str | None) -> None:
    assert retry_after_seconds(value) is None
