"""A small thread-safe cache whose entries expire after a fixed time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()


class TtlCache(Generic[K, V]):
    """Maps keys to values for `ttl_seconds`; at most `max_entries` (oldest dropped first)."""

    def __init__(
        self, ttl_seconds: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K, load: Callable[[K], V]) -> V:
        """The cached value of `key`, or `load(key)` stored for next time."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        value = load(key)
        self.put(key, value)
        return value

    def put(self, key: K, value: V) -> None:
        """Store `value` for `key`, fresh for the full time to live."""
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self._max_entries:
                # dicts keep insertion order: the first entry is the oldest.
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (self._clock() + self._ttl, value)

    def discard(self, key: K) -> None:
        """Forget `key` so the next read loads it again."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
