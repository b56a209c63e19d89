"""Token buckets keyed by credential, with an injectable clock."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

Clock = Callable[[], float]


class Decision(NamedTuple):
    """Outcome of asking a bucket for one token."""

    allowed: bool
    #: Tokens left after this request (whole tokens, for the RateLimit header).
    remaining: int
    #: Seconds until one token is available again (0 when allowed).
    retry_after: float
    #: Bucket size and refill rate that applied.
    burst: int
    rate: float

    @property
    def retry_after_seconds(self) -> int:
        """Retry delay rounded up to whole seconds, at least 1 when refused."""
        return 0 if self.allowed else max(1, math.ceil(self.retry_after))


class TokenBucket:
    """A classic token bucket: `burst` tokens, refilled at `rate` per second."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def take(self, now: float, cost: float = 1.0) -> Decision:
        """Take `cost` tokens if available; otherwise say how long to wait."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return Decision(True, int(self.tokens), 0.0, self.burst, self.rate)
        wait = (cost - self.tokens) / self.rate
        return Decision(False, 0, wait, self.burst, self.rate)


class RateLimiter:
    """Thread-safe map of keyed token buckets, bounded in size (least recently used evicted)."""

    def __init__(
        self, rate: float, burst: int, clock: Clock = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self.default_rate = rate
        self.default_burst = burst
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, rate: float | None = None, burst: int | None = None) -> Decision:
        """Take one token from `key`'s bucket, created with the given (or default) limits.

        A changed rate or burst (an admin override) takes effect on the next call.
        """
        rate = rate or self.default_rate
        burst = burst or self.default_burst
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(rate, burst, now)
                self._buckets[key] = bucket
                if len(self._buckets) > self._max_buckets:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                if bucket.rate != rate or bucket.burst != burst:
                    bucket.rate, bucket.burst = rate, burst
                    bucket.tokens = min(bucket.tokens, float(burst))
            return bucket.take(now)

    def peek_exhausted(self, key: str) -> Decision | None:
        """If `key`'s bucket exists and is empty, the refusal it would give; else None. Takes nothing."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return None
            tokens = min(float(bucket.burst), bucket.tokens + max(0.0, now - bucket.updated) * bucket.rate)
            if tokens >= 1.0:
                return None
            return Decision(False, 0, (1.0 - tokens) / bucket.rate, bucket.burst, bucket.rate)
