"""The arithmetic of comparisons on hand-made curves: targets, time to target, tuning cost,
performance profiles and their area."""

from __future__ import annotations

import itertools
import math

import pytest

from optisweep.service.comparisons.profiles import (
    TAU_MAX,
    TAUS,
    Curve,
    first_reach,
    fraction_target,
    profile,
    ratios,
    tuning_trials,
)


def _curve(number: int, values: list[float], seconds: list[float] | None = None) -> Curve:
    steps = range(1, len(values) + 1)
    return Curve(
        number=number,
        optimizer="adam",
        values=dict(zip(steps, values, strict=True)),
        seconds=dict(zip(steps, seconds, strict=True)) if seconds else {},
    )


def test_a_fraction_target_lies_that_far_from_the_median_start_to_the_best() -> None:
    curves = [_curve(0, [0.2, 0.6, 0.9]), _curve(1, [0.4, 0.5]), _curve(2, [0.3, math.nan])]
    target, rule = fraction_target(curves, "max", 0.5)
    assert target == pytest.approx(0.3 + 0.5 * (0.9 - 0.3))
    assert "50% of the way" in rule
    # A loss on a log scale: from 9 to 2e-4 (4.65 decades), 75% of the way is 10^(log10 9 -
    # 0.75 x 4.65), not 9 - 0.75 x 9 = 2.25, which a trial 10,000x worse than the best reaches.
    losses = [_curve(0, [10.0, 2e-4]), _curve(1, [8.0, 4.0])]
    target, rule = fraction_target(losses, "min", 0.75)
    assert target == pytest.approx(math.exp(math.log(9.0) + 0.75 * math.log(2e-4 / 9.0)))
    assert 1e-3 < target < 1e-2
    assert "75% of the way on a log scale" in rule
    signed = [_curve(0, [1.0, -3.0])]  # a negative objective: no log scale
    assert fraction_target(signed, "min", 0.5)[0] == pytest.approx(-1.0)


def test_the_first_epoch_at_the_target_and_its_seconds() -> None:
    curve = _curve(0, [0.5, 0.8, 0.95, 0.97], seconds=[1.0, 2.5, 4.0, 5.0])
    assert first_reach(curve, 0.9, "max") == (3, 4.0)
    assert first_reach(curve, 0.99, "max") is None
    loss = _curve(0, [3.0, math.nan, 0.5])
    assert first_reach(loss, 1.0, "min") == (3, None)  # NaN never reaches; no seconds recorded


def test_tuning_cost_counts_trials_until_the_best_is_within_tolerance() -> None:
    curves = [
        _curve(3, [0.90]),
        _curve(0, [0.50]),
        _curve(1, [math.nan]),  # a diverged trial counts as spent
        _curve(2, [0.89]),
    ]
    # In number order: 0.50, nan, 0.89 (within 2% of 0.90), 0.90.
    assert tuning_trials(curves, "max", 0.02) == 3
    assert tuning_trials(curves, "max", 0.001) == 4
    assert tuning_trials([_curve(0, [math.nan])], "max", 0.02) is None


def test_ratios_are_to_the_fastest_family_and_none_where_never_reached() -> None:
    assert ratios({"adam": 2.0, "sgd": 6.0, "adagrad": None}) == {
        "adam": 1.0,
        "sgd": 3.0,
        "adagrad": None,
    }
    assert ratios({"adam": None}) == {"adam": None}


def test_a_profile_is_the_share_of_sweeps_within_tau_and_its_area_is_exact() -> None:
    shares, area = profile([1.0, 2.0, None, 5.0], sweeps=4)
    assert shares[TAUS.index(1.0)] == 0.25
    assert shares[TAUS.index(1.95)] == 0.25
    assert shares[TAUS.index(2.0)] == 0.5
    assert shares[-1] == 0.5  # ratio 5 is beyond tau 4; None never counts
    assert all(a <= b for a, b in itertools.pairwise(shares))
    # The step function's integral over [1, 4], normalised: (3 + 2) / (3 * 4).
    assert area == pytest.approx((TAU_MAX - 1 + TAU_MAX - 2) / (3 * 4))
    # Summing the drawn profile approximates the same area.
    riemann = sum(shares[:-1]) * 0.05 / (TAU_MAX - 1)
    assert riemann == pytest.approx(area, abs=0.02)
    assert profile([1.0, 1.0], sweeps=2)[1] == 1.0
