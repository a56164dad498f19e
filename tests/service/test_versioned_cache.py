"""The cache of slow reads: a new version is computed again, unless the last computation was
slow and recent (a million-trial sweep changes between any two polls of its page)."""

from __future__ import annotations

from optisweep.service.versioned_cache import SLOW_SECONDS, SPACING, VersionedCache


class Clock:
    """Seconds that pass only when a test (or a computation) says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_quick_read_is_computed_again_at_every_new_version() -> None:
    clock, calls = Clock(), []
    cache: VersionedCache[int] = VersionedCache(8, clock=clock)

    def compute(value: int) -> int:
        calls.append(value)
        clock.now += 0.01  # quick
        return value

    assert cache.get("report", 1, lambda: compute(10)) == 10
    assert cache.get("report", 1, lambda: compute(11)) == 10  # same version: cached
    assert cache.get("report", 2, lambda: compute(12)) == 12  # changed: computed again
    assert cache.get("other", 2, lambda: compute(13)) == 13  # keys apart
    assert calls == [10, 12, 13]


def test_a_slow_read_is_spaced_by_a_few_times_its_cost() -> None:
    clock, calls = Clock(), []
    cache: VersionedCache[int] = VersionedCache(8, clock=clock)
    cost = 2 * SLOW_SECONDS

    def compute(value: int) -> int:
        calls.append(value)
        clock.now += cost
        return value

    assert cache.get("report", 1, lambda: compute(1)) == 1
    clock.now += SPACING * cost - 0.01  # just within the spacing: the last one, though stale
    assert cache.get("report", 2, lambda: compute(2)) == 1
    clock.now += 0.02  # past it: the new version is computed
    assert cache.get("report", 2, lambda: compute(3)) == 3
    assert calls == [1, 3]
