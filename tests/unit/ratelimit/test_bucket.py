"""TokenBucket and RateLimiter, driven by a fake clock."""

from __future__ import annotations

import threading

import pytest

from engine.ratelimit import Decision, RateLimiter, TokenBucket


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def drain(limiter: RateLimiter, key: str, **overrides: float) -> int:
    """Take tokens until refused; return how many were granted."""
    granted = 0
    while limiter.take(key, **overrides).allowed:  # type: ignore[arg-type]
        granted += 1
        assert granted < 10_000, "bucket never ran dry"
    return granted


# --- Decision -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [(0.0, 1), (0.001, 1), (0.5, 1), (1.0, 1), (1.0001, 2), (1.25, 2), (2.0, 2), (59.5, 60)],
)
def test_retry_after_seconds_rounds_up_to_at_least_one_when_refused(retry_after: float, seconds: int) -> None:
    decision = Decision(allowed=False, remaining=0, retry_after=retry_after, burst=5, rate=1.0)
    assert decision.retry_after_seconds == seconds


def test_retry_after_seconds_is_zero_when_allowed() -> None:
    assert Decision(allowed=True, remaining=3, retry_after=0.0, burst=5, rate=1.0).retry_after_seconds == 0


# --- TokenBucket ----------------------------------------------------------------------------


def test_bucket_starts_full_and_allows_whole_burst_at_once() -> None:
    bucket = TokenBucket(rate=1.0, burst=3, now=0.0)
    decisions = [bucket.take(0.0) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.retry_after == 0.0 and d.burst == 3 and d.rate == 1.0 for d in decisions)


def test_bucket_refuses_after_burst_and_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=4.0, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    refused = bucket.take(0.0)
    assert not refused.allowed
    assert refused.remaining == 0
    assert refused.retry_after == pytest.approx(0.25)  # one token at 4 per second
    assert refused.retry_after_seconds == 1


def test_bucket_refills_exactly_rate_times_elapsed() -> None:
    bucket = TokenBucket(rate=2.0, burst=10, now=0.0)
    for _ in range(10):
        assert bucket.take(0.0).allowed
    # 1.5 s at 2 tokens/s = 3 tokens, no more.
    granted = [bucket.take(1.5).allowed for _ in range(4)]
    assert granted == [True, True, True, False]


def test_bucket_refill_never_exceeds_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=3, now=0.0)
    decisions = [bucket.take(3600.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].remaining == 2


def test_bucket_partial_refill_shortens_retry_after() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.take(0.0).allowed
    refused = bucket.take(0.75)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(0.25)
    assert bucket.take(1.0).allowed


def test_bucket_ignores_a_clock_that_goes_backwards() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, now=100.0)
    assert bucket.take(100.0).allowed
    # Going back in time must neither crash nor remove tokens.
    decision = bucket.take(50.0)
    assert decision.allowed
    assert decision.remaining == 0
    assert not bucket.take(50.0).allowed


def test_bucket_cost_takes_several_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=5, now=0.0)
    first = bucket.take(0.0, cost=3)
    assert first.allowed and first.remaining == 2
    refused = bucket.take(0.0, cost=3)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(1.0)
    assert bucket.take(0.0, cost=2).allowed


# --- RateLimiter ----------------------------------------------------------------------------


def test_limiter_allows_burst_then_refuses() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=5, clock=clock)
    assert drain(limiter, "a") == 5
    refused = limiter.take("a")
    assert not refused.allowed
    assert refused.burst == 5 and refused.rate == 1.0
    assert refused.retry_after == pytest.approx(1.0)
    assert refused.retry_after_seconds == 1


def test_limiter_refills_after_time_passes_on_its_clock() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0.5, burst=4, clock=clock)
    assert drain(limiter, "a") == 4
    clock.advance(3.9)  # 1.95 tokens: one
    assert drain(limiter, "a") == 1
    clock.advance(4.0)  # 0.95 + 2 tokens
    assert drain(limiter, "a") == 2
    refused = limiter.take("a")
    # 0.95 tokens left, 0.05 missing at 0.5/s.
    assert refused.retry_after == pytest.approx(0.1)
    assert refused.retry_after_seconds == 1


def test_limiter_retry_after_seconds_rounds_up_slow_rates() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0.4, burst=1, clock=clock)
    assert limiter.take("a").allowed
    refused = limiter.take("a")
    assert refused.retry_after == pytest.approx(2.5)
    assert refused.retry_after_seconds == 3


def test_limiter_keys_are_isolated() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    assert drain(limiter, "a") == 2
    assert not limiter.take("a").allowed
    assert limiter.take("b").allowed
    assert limiter.take("b").allowed
    assert not limiter.take("b").allowed


def test_limiter_per_call_burst_override_applies_to_new_bucket() -> None:
    limiter = RateLimiter(rate=1.0, burst=2, clock=FakeClock())
    assert drain(limiter, "big", burst=7) == 7
    assert drain(limiter, "default") == 2


def test_limiter_per_call_rate_override_changes_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.take("a", rate=10.0).allowed
    refused = limiter.take("a", rate=10.0)
    assert refused.rate == 10.0
    assert refused.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    assert limiter.take("a", rate=10.0).allowed


def test_limiter_rate_override_takes_effect_on_existing_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock)
    assert limiter.take("a").allowed
    refused = limiter.take("a", rate=4.0)
    assert not refused.allowed
    assert refused.rate == 4.0
    assert refused.retry_after == pytest.approx(0.25)
    clock.advance(0.25)  # at the default 1/s this would be a quarter of a token
    decision = limiter.take("a", rate=4.0)
    assert decision.allowed and decision.rate == 4.0


def test_limiter_lower_burst_override_clamps_existing_tokens() -> None:
    limiter = RateLimiter(rate=1.0, burst=10, clock=FakeClock())
    assert limiter.take("a").allowed  # 9 tokens left
    assert drain(limiter, "a", burst=3) == 3
    refused = limiter.take("a", burst=3)
    assert refused.burst == 3


def test_limiter_higher_burst_override_raises_the_cap() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=2, clock=clock)
    assert drain(limiter, "a") == 2
    clock.advance(100.0)
    # Refill caps at the new burst, not the old one.
    assert drain(limiter, "a", burst=6) == 6


def test_limiter_zero_or_none_override_means_default() -> None:
    limiter = RateLimiter(rate=2.0, burst=3, clock=FakeClock())
    decision = limiter.take("a", rate=None, burst=None)
    assert (decision.rate, decision.burst) == (2.0, 3)
    decision = limiter.take("b", rate=0, burst=0)
    assert (decision.rate, decision.burst) == (2.0, 3)


def test_limiter_evicts_least_recently_used_beyond_max_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=0.001, burst=1, clock=clock, max_buckets=2)
    assert limiter.take("a").allowed
    assert limiter.take("b").allowed
    assert limiter.take("c").allowed  # evicts "a", the least recently used
    assert limiter.peek_exhausted("a") is None
    assert limiter.peek_exhausted("b") is not None
    assert limiter.peek_exhausted("c") is not None
    # "a" gets a fresh, full bucket: the eviction forgot it was empty.
    assert limiter.take("a").allowed  # evicts "b"
    assert limiter.peek_exhausted("b") is None


def test_limiter_use_refreshes_recency() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, clock=FakeClock(), max_buckets=2)
    limiter.take("a")
    limiter.take("b")
    assert not limiter.take("a").allowed  # touches "a": "b" is now the oldest
    limiter.take("c")  # evicts "b"
    assert limiter.peek_exhausted("a") is not None
    assert limiter.peek_exhausted("b") is None
    assert not limiter.take("a").allowed


def test_limiter_never_holds_more_than_max_buckets() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, clock=FakeClock(), max_buckets=5)
    for i in range(50):
        limiter.take(f"k{i}")
    remembered = [i for i in range(50) if limiter.peek_exhausted(f"k{i}") is not None]
    assert remembered == [45, 46, 47, 48, 49]


def test_peek_exhausted_is_none_for_unknown_key_and_creates_nothing() -> None:
    limiter = RateLimiter(rate=0.001, burst=1, clock=FakeClock(), max_buckets=1)
    limiter.take("a")
    assert limiter.peek_exhausted("zzz") is None
    # Peeking did not create (and so did not evict) anything.
    assert limiter.peek_exhausted("a") is not None


def test_peek_exhausted_is_none_while_tokens_remain() -> None:
    limiter = RateLimiter(rate=1.0, burst=2, clock=FakeClock())
    limiter.take("a")
    assert limiter.peek_exhausted("a") is None


def test_peek_exhausted_takes_nothing() -> None:
    limiter = RateLimiter(rate=1.0, burst=3, clock=FakeClock())
    limiter.take("a")
    for _ in range(20):
        assert limiter.peek_exhausted("a") is None
    assert drain(limiter, "a") == 2


def test_peek_exhausted_reports_the_refusal_and_accounts_for_refill() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=2.0, burst=2, clock=clock)
    assert drain(limiter, "a") == 2
    peeked = limiter.peek_exhausted("a")
    assert peeked is not None
    assert not peeked.allowed
    assert peeked.retry_after == pytest.approx(0.5)
    assert (peeked.burst, peeked.rate) == (2, 2.0)
    clock.advance(0.25)
    peeked = limiter.peek_exhausted("a")
    assert peeked is not None and peeked.retry_after == pytest.approx(0.25)
    clock.advance(0.25)
    assert limiter.peek_exhausted("a") is None
    # Peeking did not consume the refilled token.
    assert limiter.take("a").allowed


def test_limiter_is_thread_safe() -> None:
    limiter = RateLimiter(rate=0.001, burst=500, clock=FakeClock())
    allowed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(limiter.take("shared").allowed for _ in range(200))
        with lock:
            allowed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 500


def test_limiter_uses_monotonic_clock_by_default() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.take("a").allowed
    assert not limiter.take("a").allowed
