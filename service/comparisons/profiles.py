"""The arithmetic of a comparison, on plain data: targets, time to target, tuning cost and
performance profiles (Dolan and More 2002; MLCommons AlgoPerf's area under the profile)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["max", "min"]
TAU_MAX = 4.0
TAUS = [round(1 + 0.05 * i, 2) for i in range(61)]
"""Where profiles are drawn: tau from 1 to 4."""


@dataclass
class Curve:
    """One trial's values of the compared metric, and its cumulative seconds, by epoch."""

    number: int
    optimizer: str
    values: dict[int, float] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    ranked: bool = True
    """Whether it ranks on a leaderboard (completed or stopped: not diverged or failed)."""

    def summary(self, epoch: Literal["last", "best"], mode: Mode) -> float | None:
        """Its value by a summary rule, as a leaderboard ranks it: its last epoch's or its
        best; None for a trial that does not rank or has no finite value."""
        if not self.ranked or not self.values:
            return None
        last = self.values[max(self.values)]
        if epoch == "best":
            return self.best(mode)
        return last if math.isfinite(last) else None

    def best(self, mode: Mode) -> float | None:
        """Its best finite value."""
        finite = [v for v in self.values.values() if math.isfinite(v)]
        if not finite:
            return None
        return max(finite) if mode == "max" else min(finite)


def reaches(value: float, target: float, mode: Mode) -> bool:
    """Whether ``value`` is at or beyond ``target`` in the metric's direction."""
    if not math.isfinite(value):
        return False
    return value >= target if mode == "max" else value <= target


def first_reach(curve: Curve, target: float, mode: Mode) -> tuple[int, float | None] | None:
    """The first epoch at which the trial reached the target, and its seconds by then."""
    for epoch in sorted(curve.values):
        if reaches(curve.values[epoch], target, mode):
            return epoch, curve.seconds.get(epoch)
    return None


def fraction_target(
    curves: Sequence[Curve], mode: Mode, fraction: float
) -> tuple[float | None, str]:
    """The value ``fraction`` of the way from where the trials started (the median of their
    first epochs) to the best any of them reached, and that rule in words: for a metric
    minimised with both ends positive (a loss), on a log scale (a loss falling from 6 to 3e-5
    is 95% of the way at 1e-4, not at 0.3, which a trial 10,000x worse would reach)."""
    starts = [c.values[min(c.values)] for c in curves if c.values]
    starts = [v for v in starts if math.isfinite(v)]
    bests = [b for c in curves if (b := c.best(mode)) is not None]
    if not starts or not bests:
        return None, "no trial has reported a finite value yet"
    start = statistics.median(starts)
    best = max(bests) if mode == "max" else min(bests)
    logarithmic = mode == "min" and start > 0 and best > 0
    if logarithmic:
        target = math.exp(math.log(start) + fraction * (math.log(best) - math.log(start)))
    else:
        target = start + fraction * (best - start)
    rule = (
        f"{fraction:.0%} of the way{' on a log scale' if logarithmic else ''} from the first "
        f"epoch's median ({start:.4g}) to the best reached ({best:.4g})"
    )
    return target, rule


def tuning_trials(curves: Sequence[Curve], mode: Mode, tolerance: float) -> int | None:
    """How many of the family's trials (in the order they were numbered) it took until its best
    so far was within ``tolerance`` x |final best| of its final best."""
    ordered = sorted(curves, key=lambda c: c.number)
    bests = [c.best(mode) for c in ordered]
    finite = [b for b in bests if b is not None]
    if not finite:
        return None
    final = max(finite) if mode == "max" else min(finite)
    close = tolerance * abs(final)
    so_far: float | None = None
    for count, best in enumerate(bests, start=1):
        if best is not None and (so_far is None or reaches(best, so_far, mode)):
            so_far = best
        if so_far is not None and abs(final - so_far) <= close:
            return count
    return len(ordered)


def ratios(times: Mapping[str, float | None]) -> dict[str, float | None]:
    """Each family's time over the fastest family's (None for those that never reached)."""
    reached = [t for t in times.values() if t is not None]
    if not reached:
        return dict.fromkeys(times)
    fastest = min(reached)
    return {
        family: None if t is None else (t / fastest if fastest > 0 else 1.0)
        for family, t in times.items()
    }


def profile(per_sweep: Iterable[float | None], *, sweeps: int) -> tuple[list[float], float]:
    """A family's shares at every tau of ``TAUS`` and its normalised area, from its ratios on
    each sweep (None: it did not reach the target there, or did not run)."""
    found = [r for r in per_sweep if r is not None]
    shares = [sum(r <= tau + 1e-12 for r in found) / sweeps for tau in TAUS]
    area = sum(max(0.0, TAU_MAX - max(r, 1.0)) for r in found) / ((TAU_MAX - 1) * sweeps)
    return shares, area
