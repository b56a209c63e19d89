"""TtlCache: expiry with a fake clock, loading, bounds, invalidation."""

from __future__ import annotations

from engine.cache import TtlCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_loads_once_then_serves_from_cache_until_expiry() -> None:
    clock = FakeClock()
    loads: list[str] = []
    cache: TtlCache[str, str] = TtlCache(2.0, clock=clock)

    def load(key: str) -> str:
        loads.append(key)
        return key.upper() + str(len(loads))

    assert cache.get("a", load) == "A1"
    clock.now += 1.99
    assert cache.get("a", load) == "A1"
    clock.now += 0.01
    assert cache.get("a", load) == "A2"
    assert loads == ["a", "a"]


def test_none_is_cached_like_any_value() -> None:
    cache: TtlCache[str, None] = TtlCache(10.0, clock=FakeClock())
    calls = []
    assert cache.get("missing", lambda k: calls.append(k)) is None
    assert cache.get("missing", lambda k: calls.append(k)) is None
    assert calls == ["missing"]


def test_put_discard_and_clear() -> None:
    cache: TtlCache[str, int] = TtlCache(10.0, clock=FakeClock())
    cache.put("a", 1)
    assert cache.get("a", lambda k: 99) == 1
    cache.discard("a")
    assert cache.get("a", lambda k: 2) == 2
    cache.put("b", 3)
    cache.clear()
    assert cache.get("b", lambda k: 4) == 4


def test_oldest_entry_is_dropped_at_the_bound() -> None:
    cache: TtlCache[int, int] = TtlCache(10.0, max_entries=3, clock=FakeClock())
    for key in range(4):
        cache.put(key, key)
    assert cache.get(0, lambda k: -1) == -1  # evicted, reloaded
    assert cache.get(3, lambda k: -1) == 3
