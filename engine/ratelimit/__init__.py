"""Token-bucket rate limiting, one bucket per credential."""

from engine.ratelimit.bucket import Decision, RateLimiter, TokenBucket

__all__ = ["Decision", "RateLimiter", "TokenBucket"]
