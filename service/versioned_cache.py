"""A cache of expensive reads (a sweep's report, a comparison) by what they read's version.

A read is computed again once its sweeps' version changes (a trial changed status or reported
an epoch), except that a read which took long is served as last computed until a few times its
cost has passed: the sweep page polls the report of a running sweep every few seconds, and a
million-trial sweep changes between any two polls, so without the spacing one core would do
nothing but recompute it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import LRUCache

T = TypeVar("T")

SLOW_SECONDS = 0.5
"""A computation at least this long is spaced (a quicker one is redone at every change)."""
SPACING = 3.0
"""A slow computation is redone at most once per this many times its cost."""


@dataclass(frozen=True)
class _Entry(Generic[T]):
    version: Hashable
    value: T
    at: float
    cost: float


class VersionedCache(Generic[T]):
    """Values by key, each computed at a version of what it reads."""

    def __init__(self, maxsize: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: LRUCache[Hashable, _Entry[T]] = LRUCache(maxsize)
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, key: Hashable, version: Hashable, compute: Callable[[], T]) -> T:
        """The value for ``key`` at ``version``: cached, or computed now (or, for a slow
        computation done less than ``SPACING`` times its cost ago, the last one)."""
        with self._lock:
            entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and (
            entry.version == version
            or (entry.cost >= SLOW_SECONDS and now - entry.at < SPACING * entry.cost)
        ):
            return entry.value
        value = compute()
        done = self._clock()
        with self._lock:
            self._entries[key] = _Entry(version, value, done, done - now)
        return value
