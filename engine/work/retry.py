"""When to try a failed piece of work again: a schedule of delays (data), jittered, honouring Retry-After.

Nothing here knows what the work is: webhook deliveries use it, and any other consumer of
retried work takes the same policy.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass

from engine.store.base import utcnow


@dataclass(frozen=True)
class RetryPolicy:
    """A schedule of delays (data, not code), jittered, honouring Retry-After."""

    schedule: tuple[float, ...]
    jitter: float = 0.2

    @property
    def attempts(self) -> int:
        """Attempts in all: the first one and one per scheduled delay."""
        return len(self.schedule) + 1

    def delay_after(self, attempt_number: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds until the attempt after `attempt_number`; None when it was the last.

        The other side's Retry-After may lengthen the wait up to the schedule's longest
        delay, never shorten it below the schedule.
        """
        if attempt_number >= self.attempts:
            return None
        delay = self.schedule[attempt_number - 1] * rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.schedule)))
        return delay


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or junk."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())
