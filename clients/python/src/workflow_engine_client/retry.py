"""When and how long a client waits before trying a failed call again.

Two failures are retried, both bounded by `RetryConfig.max_attempts` and `max_delay`:

- RESOURCE_EXHAUSTED (`RateLimited`), after the delay the engine advertises in its
  `google.rpc.RetryInfo` detail. The engine refuses such a call before doing anything, so
  every method may be retried. An advertised delay longer than `max_delay` is not waited for:
  the `RateLimited` error is raised at once (its `retry_after` says how long to wait).
- UNAVAILABLE (`Unavailable`), after an exponential backoff with jitter. Only for methods
  that are safe to repeat (reads and config updates), unless `retry_non_idempotent` is set:
  an UNAVAILABLE answer to e.g. SendMessage may come after the message was stored, and
  sending it again would send it twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workflow_engine_client.errors import EngineError, RateLimited, Unavailable


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen: passed to `RetryConfig.on_retry` before the client sleeps."""

    #: Full gRPC method name, e.g. `/workflow_engine.v1.SessionsService/GetSession`.
    method: str
    #: The attempt that failed (1 for the first call).
    attempt: int
    #: Why it failed.
    error: EngineError
    #: Seconds the client waits before the next attempt.
    delay: float


@dataclass(frozen=True)
class RetryConfig:
    """Bounds of the client's retries. `RetryConfig(max_attempts=1)` never retries."""

    #: Attempts in all, the first one included (at least 1).
    max_attempts: int = 4
    #: First UNAVAILABLE backoff, in seconds; multiplied by `backoff_multiplier` on each retry.
    initial_backoff: float = 0.25
    backoff_multiplier: float = 2.0
    #: The longest the client waits before one retry (backoff or server-advertised delay).
    max_delay: float = 10.0
    #: Each backoff is scaled by a random factor in [1 - jitter, 1 + jitter] (then capped).
    jitter: float = 0.2
    #: Retry RESOURCE_EXHAUSTED after the server's RetryInfo delay.
    retry_rate_limited: bool = True
    #: Retry UNAVAILABLE with backoff.
    retry_unavailable: bool = True
    #: Also retry UNAVAILABLE for calls that may have had an effect (see the module docstring).
    retry_non_idempotent: bool = False
    #: Delay used when a RESOURCE_EXHAUSTED answer advertises none.
    default_rate_limit_delay: float = 1.0
    #: Called before each retry (logging, metrics, tests).
    on_retry: Callable[[RetryEvent], None] | None = field(default=None, compare=False)
    #: How the client waits; replaceable in tests.
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_delay < 0 or self.backoff_multiplier < 1:
            raise ValueError("backoffs must be non-negative and the multiplier at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def backoff(self, attempt: int) -> float:
        """The UNAVAILABLE backoff after failed attempt number `attempt` (1-based), jittered and capped."""
        base = self.initial_backoff * self.backoff_multiplier ** (attempt - 1)
        jittered = base * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 (not cryptographic)
        return min(self.max_delay, jittered)

    def delay_before_retry(self, error: EngineError, attempt: int, idempotent: bool) -> float | None:
        """Seconds to wait before retrying after `error` on attempt `attempt`, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        if isinstance(error, RateLimited):
            if not self.retry_rate_limited:
                return None
            delay = error.retry_after if error.retry_after is not None else self.default_rate_limit_delay
            return delay if delay <= self.max_delay else None
        if isinstance(error, Unavailable):
            if not self.retry_unavailable or not (idempotent or self.retry_non_idempotent):
                return None
            return self.backoff(attempt)
        return None


#: A configuration that never retries.
NO_RETRY = RetryConfig(max_attempts=1)
