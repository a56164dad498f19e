"""How sure a leaderboard is: confidence intervals over repeats, and which families the data
cannot tell apart from the leader (Welch's t-test, scipy)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats

LEVEL = 0.95
"""The confidence level of the intervals."""
ALPHA = 0.05
"""A family whose best configuration differs from the leader's with p >= ALPHA is tied."""
TEST = (
    "Welch's t-test (two-sided) of each family's best configuration against the leader's, "
    f"over their repeats; p >= {ALPHA:g}: not distinguishable from the leader"
)
SINGLE_SEEDS = (
    "ranked from single seeds: close families may swap places on another seed "
    "(search.repeats >= 2 gives intervals and a test)"
)


def confidence_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float]:
    """The t-distribution interval for the mean of ``values`` (at least two of them)."""
    if len(values) < 2:
        raise ValueError("an interval needs at least two values")
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) / math.sqrt(len(values))
    if spread == 0:
        return mean, mean
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=spread)
    return float(low), float(high)


def p_value(leader: Sequence[float], other: Sequence[float]) -> float | None:
    """Welch's two-sided p-value that ``other``'s mean equals ``leader``'s; None with fewer
    than two values on either side."""
    if len(leader) < 2 or len(other) < 2:
        return None
    if statistics.pvariance(leader) == 0 and statistics.pvariance(other) == 0:
        return 1.0 if statistics.fmean(leader) == statistics.fmean(other) else 0.0
    return float(stats.ttest_ind(leader, other, equal_var=False).pvalue)
