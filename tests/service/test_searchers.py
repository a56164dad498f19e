"""The searcher wrappers: repeats over seeds and a bound on configurations in flight, around
a real Optuna-backed searcher."""

from __future__ import annotations

import pytest

from optisweep.service.search import (
    AdaptiveSearcher,
    ConcurrencyLimiter,
    RandomSearcher,
    Repeater,
    StoredTrial,
    combine,
)
from optisweep.service.sweeps.schemas import Space

SPACE = Space.model_validate(
    {"optimizers": ["adam", "sgd"], "lr": {"low": 1e-4, "high": 1e-1, "log": True}}
)


def _tpe() -> AdaptiveSearcher:
    return AdaptiveSearcher(SPACE, algorithm="tpe", seed=0, mode="min")


def _values(searcher: AdaptiveSearcher) -> list[float | None]:
    return [t.value for t in searcher._study.get_trials(deepcopy=False)]  # white box


def test_a_repeated_configuration_is_told_once_with_its_mean() -> None:
    inner = _tpe()
    repeater = Repeater(inner, repeats=3)
    first = [repeater.suggest() for _ in range(3)]
    assert first[0] is not None
    assert first[0] == first[1] == first[2]  # one configuration, three seeds
    second = repeater.suggest()
    assert second is not None
    assert second != first[0]
    repeater.on_complete(0, "completed", 1.0)
    repeater.on_complete(2, "completed", 3.0)
    assert inner.told == 0  # a repeat is still open
    repeater.on_complete(1, "stopped", 2.0)
    assert inner.told == 1
    assert _values(inner)[0] == pytest.approx(2.0)


def test_a_restored_repeater_keeps_the_repeats_that_ended() -> None:
    original = Repeater(_tpe(), repeats=2)
    params = [original.suggest() for _ in range(4)]
    stored = [
        StoredTrial(n, p.search_params or {}, outcome, value)
        for n, (p, outcome, value) in enumerate(
            zip(
                params,
                ["completed", "completed", "failed", None],
                [1.0, 3.0, None, None],
                strict=True,
            )
        )
        if p is not None
    ]
    inner = _tpe()
    restored = Repeater(inner, repeats=2)
    restored.restore(stored)
    assert inner.told == 1  # configuration 0: both repeats ended, mean 2.0
    assert _values(inner)[0] == pytest.approx(2.0)
    restored.on_complete(3, "failed", None)  # configuration 1's second repeat
    assert inner.told == 2


def test_the_limiter_holds_back_at_its_limit_but_never_waits_on_nothing() -> None:
    limit = [2]
    limiter = ConcurrencyLimiter(_tpe(), limit=lambda: limit[0])
    assert limiter.suggest() is not None
    assert limiter.suggest() is not None
    assert limiter.suggest() is None  # two in flight
    limiter.on_complete(0, "completed", 0.5)
    assert limiter.suggest() is not None
    limit[0] = 0
    assert limiter.suggest() is None
    limiter.on_complete(1, "completed", 0.4)
    limiter.on_complete(2, "completed", 0.3)
    assert limiter.suggest() is not None  # nothing in flight: one goes, whatever the limit


def test_a_restored_limiter_counts_what_is_still_in_flight() -> None:
    source = _tpe()
    drawn = [source.suggest() for _ in range(3)]
    stored = [
        StoredTrial(n, p.search_params or {}, outcome, value)
        for n, (p, outcome, value) in enumerate(
            zip(drawn, ["completed", None, None], [1.0, None, None], strict=True)
        )
        if p is not None
    ]
    limiter = ConcurrencyLimiter(_tpe(), limit=lambda: 2)
    limiter.restore(stored)
    assert limiter.suggest() is None  # numbers 1 and 2 are in flight
    limiter.on_complete(1, "completed", 0.5)
    assert limiter.suggest() is not None


def test_random_search_suggests_its_budget_and_restores_by_redrawing() -> None:
    searcher = RandomSearcher(SPACE, num_trials=5, seed=3)
    drawn = list(iter(searcher.suggest, None))
    assert len(drawn) == 5
    again = RandomSearcher(SPACE, num_trials=5, seed=3)
    again.restore([StoredTrial(n, {}, None, None) for n in range(2)])
    assert list(iter(again.suggest, None)) == drawn[2:]


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([("completed", 1.0), ("completed", 3.0)], ("completed", 2.0)),
        ([("completed", 1.0), ("stopped", 3.0)], ("stopped", 2.0)),
        ([("completed", 1.0), ("diverged", float("nan"))], ("diverged", 1.0)),
        ([("failed", None), ("failed", None)], ("failed", None)),
        ([("completed", 1.0), (None, None)], (None, None)),
    ],
)
def test_how_a_configuration_over_seeds_ends(
    results: list[tuple[str | None, float | None]], expected: tuple[str | None, float | None]
) -> None:
    assert combine(results) == expected  # type: ignore[arg-type]
