"""The report's arithmetic on columns (``sweeps/basin.py``) against the plain reading of its
rule: configurations as lists, the best by ``min``/``max``, the basin walked one neighbour at
a time along the lr-sorted slice of the best's group."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from optisweep.service.sweeps.basin import best_and_basin, configurations


@dataclass(frozen=True)
class _Trial:
    number: int
    lr: float
    value: float
    group: int


def _reference(
    trials: list[_Trial], repeats: int, maximize: bool, tolerance: float
) -> tuple[int, float, float, int, bool, bool, float, int]:
    """(best number, basin low, high, count, open below, open above, highest lr tried,
    configurations), read the long way."""
    members: dict[int, list[_Trial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        members.setdefault(trial.number // repeats, []).append(trial)
    configs = [
        _Trial(m[0].number, m[0].lr, statistics.fmean(t.value for t in m), m[0].group)
        for m in members.values()
    ]
    best = (max if maximize else min)(configs, key=lambda c: c.value)
    margin = tolerance * max(abs(best.value), 1e-12)

    def near(c: _Trial) -> bool:
        return (best.value - c.value if maximize else c.value - best.value) <= margin

    by_lr = sorted((c for c in configs if c.group == best.group), key=lambda c: (c.lr, c.number))
    low = high = by_lr.index(best)
    while low > 0 and near(by_lr[low - 1]):
        low -= 1
    while high < len(by_lr) - 1 and near(by_lr[high + 1]):
        high += 1
    return (
        best.number,
        by_lr[low].lr,
        by_lr[high].lr,
        high - low + 1,
        low == 0,
        high == len(by_lr) - 1,
        by_lr[-1].lr,
        len(configs),
    )


_LRS = [1e-4, 1e-3, 3e-3, 1e-2, 0.1, 1.0]

trials_lists = st.lists(
    st.tuples(st.sampled_from(_LRS), st.integers(0, 6), st.integers(0, 2)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    trials_lists,
    st.integers(1, 3),
    st.booleans(),
    st.sampled_from([0.0, 0.02, 0.5]),
    st.randoms(use_true_random=False),
)
def test_the_columns_find_the_same_best_and_basin_as_the_lists(
    drawn: list[tuple[float, int, int]],
    repeats: int,
    maximize: bool,
    tolerance: float,
    shuffle: random.Random,
) -> None:
    # Repeats of a configuration share its lr and group; values are small integers, so ties
    # are common and every mean is exact.
    trials = [
        _Trial(n, drawn[n // repeats][0], float(drawn[n][1]), drawn[n // repeats][2])
        for n in range(len(drawn))
    ]
    order = list(range(len(trials)))
    shuffle.shuffle(order)  # rows come back in any order
    rows = [trials[i] for i in order]
    found = configurations(
        np.array([t.number for t in rows], dtype=np.int64),
        np.array([t.lr for t in rows]),
        np.array([t.value for t in rows]),
        np.array([t.group for t in rows], dtype=np.int64),
        np.zeros(len(rows), dtype=np.bool_),
        repeats=repeats,
    )
    basin = best_and_basin(found, maximize=maximize, tolerance=tolerance)
    assert (
        int(found.numbers[basin.best]),
        basin.low,
        basin.high,
        basin.count,
        basin.open_below,
        basin.open_above,
        basin.highest_tried,
        len(found),
    ) == _reference(trials, repeats, maximize, tolerance)


def test_a_configuration_is_its_first_repeat_with_the_mean_of_its_repeats() -> None:
    found = configurations(
        np.array([5, 4, 1, 0], dtype=np.int64),
        np.array([0.1, 0.1, 0.01, 0.01]),
        np.array([3.0, 1.0, 4.0, 2.0]),
        np.array([0, 0, 1, 1], dtype=np.int64),
        np.array([False, False, True, True]),
        repeats=2,
        sizes=["b", "b", "a", "a"],
    )
    assert found.numbers.tolist() == [0, 4]
    assert found.values.tolist() == [3.0, 2.0]
    assert found.defaults.tolist() == [True, False]
    assert found.sizes == ["a", "b"]
    only = found.take(np.array([False, True]))
    assert (only.numbers.tolist(), only.sizes) == ([4], ["b"])
