"""Warm start (``search.warm_start``): which earlier trials fit a new space (one rule), how each
searcher uses them (Optuna told them, random search trains the best again first, a grid puts
its measured points first), what the report says, and the 404 and 422 of bad sources."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import pytest

from optisweep.optimizers import get_spec
from optisweep.service.search import AdaptiveSearcher, StoredTrial, make_searcher
from optisweep.service.search.warm import EarlierTrial, fit, sort_fitting
from optisweep.service.sweeps.schemas import Space, SweepCreate
from optisweep.workers.states import TrialState
from tests.service.conftest import LiveAPI

SPACE = {
    "optimizers": ["adam", "sgd"],
    "lr": {"low": 1e-4, "high": 1e-1, "log": True},
    "beta1": {"low": 0.8, "high": 0.99},
}


def _earlier(
    optimizer: str, lr: float, value: float, number: int = 0, **hyperparameters: Any
) -> EarlierTrial:
    """A finished trial of sweep 7, its configuration as a random search of SPACE makes it."""
    spec = get_spec(optimizer)
    full = spec.validate({"lr": lr, **hyperparameters}).model_dump(mode="json")
    return EarlierTrial(7, number, optimizer, full, {}, TrialState.COMPLETED, value)


def _sweep(algorithm: str, space: dict[str, Any] | None = None, **search: Any) -> SweepCreate:
    return SweepCreate.model_validate(
        {
            "name": "warm",
            "workload": {"name": "quadratic", "epochs": 2},
            "space": space or SPACE,
            "search": {"algorithm": algorithm, **search},
        }
    )


def test_a_trial_fits_where_the_new_space_makes_its_configuration_again() -> None:
    space = Space.model_validate(SPACE)
    adam = _earlier("adam", 3e-3, 0.9, betas=[0.9, 0.999])
    params = fit(space, adam)
    assert params == {"optimizer": "adam", "adam.lr": 3e-3, "adam.beta1": 0.9}
    assert fit(space, _earlier("adam", 0.5, 0.9)) == "lr outside the space"
    assert fit(space, _earlier("adam", 3e-3, 0.9, betas=[0.5, 0.999])) == "beta1 outside the space"
    assert fit(space, _earlier("rmsprop", 3e-3, 0.9)) == "rmsprop not searched"
    # a hyperparameter the new space keeps at its default, set otherwise before
    assert fit(space, _earlier("adam", 3e-3, 0.9, weight_decay=0.1)) == "weight_decay differs"
    other = EarlierTrial(
        7, 0, "sgd", adam.hyperparameters, {}, TrialState.COMPLETED, 0.9, (), False
    )
    assert fit(space, other) == "another workload"
    # a shared beta (Sobol, GP...) that sgd does not read does not keep sgd out
    sgd = _earlier("sgd", 1e-2, 0.5)
    assert fit(space, sgd, shared=True) == {"optimizer": "sgd", "lr": 1e-2, "beta1": 0.8}
    counted = sort_fitting(space, [adam, sgd, _earlier("adam", 0.5, 0.9)], shared=False)
    assert len(counted.fitting) == 2
    assert counted.left_out == {7: {"lr outside the space": 1}}


LRS = [10 ** (-4 + 3 * k / 8) for k in range(9)]
"""The earlier sweep's learning rates, log-spaced over the space."""


def _earlier_sweep() -> list[EarlierTrial]:
    """Finished trials: adam best near lr 3e-3, sgd near 3e-2 (value 1 - |log10(lr / best)|),
    each family's lr on 9 points from 1e-4 to 1e-1 and at 1.0 (outside the space)."""
    found = []
    for number, (family, lr) in enumerate(itertools.product(["adam", "sgd"], [*LRS, 1.0])):
        best = 3e-3 if family == "adam" else 3e-2
        found.append(_earlier(family, lr, 1.0 - abs(math.log10(lr / best)), number=number))
    return found


def test_an_adaptive_searcher_is_told_the_fitting_trials_and_numbers_its_own_from_0() -> None:
    earlier = _earlier_sweep()
    searcher = AdaptiveSearcher(
        Space.model_validate(SPACE), algorithm="tpe", seed=1, mode="max", earlier=earlier
    )
    assert len(searcher.warm.fitting) == 18  # lr 1.0 is outside the space, twice
    assert searcher.warm.left_out == {7: {"lr outside the space": 2}}
    assert searcher.told == 18
    first = [searcher.suggest() for _ in range(3)]
    assert all(s is not None for s in first)
    searcher.on_complete(1, TrialState.COMPLETED, 0.5)  # its own numbers, from 0
    assert searcher.told == 19
    # a restarted searcher is told the same earlier trials, then its own stored ones
    again = AdaptiveSearcher(
        Space.model_validate(SPACE), algorithm="tpe", seed=1, mode="max", earlier=earlier
    )
    again.restore(
        [
            StoredTrial(n, s.search_params or {}, TrialState.COMPLETED if n == 1 else None, 0.5)
            for n, s in enumerate(first)
            if s is not None
        ]
    )
    assert again.told == 19
    assert again.suggest() is not None
    again.on_complete(0, TrialState.COMPLETED, 0.4)
    assert again.told == 20


def test_tpe_warm_started_draws_near_the_earlier_best() -> None:
    """The point of it: TPE's first draws go where the earlier sweep found each family's best
    lr (18 earlier trials: past TPE's ten random start-up draws), over five seeds."""
    best = {"adam": 3e-3, "sgd": 3e-2}

    def distance(earlier: list[EarlierTrial], seed: int) -> float:
        searcher = make_searcher(
            _sweep("tpe", num_trials=8, seed=seed), max_trials=100, earlier=earlier
        )
        drawn = [searcher.suggest() for _ in range(8)]
        return statistics.fmean(
            abs(math.log10(s.hyperparameters["lr"] / best[s.optimizer])) for s in drawn if s
        )

    warm = statistics.fmean(distance(_earlier_sweep(), seed) for seed in range(5))
    cold = statistics.fmean(distance([], seed) for seed in range(5))
    assert warm < 0.8 * cold


def test_random_search_trains_the_earlier_best_again_first_within_its_budget() -> None:
    sweep = _sweep("random", num_trials=8)
    searcher = make_searcher(sweep, max_trials=100, earlier=_earlier_sweep())
    suggestions = list(iter(searcher.suggest, None))
    assert len(suggestions) == 8
    first, drawn = suggestions[:2], suggestions[2:]  # a quarter of the budget
    assert [(s.optimizer, s.hyperparameters["lr"]) for s in first] == [
        ("adam", LRS[4]),
        ("sgd", LRS[7]),
    ]
    assert [s.origin for s in first] == ["sweep 7 trial 4", "sweep 7 trial 17"]
    assert all(s.origin is None for s in drawn)


def test_a_grid_puts_the_points_earlier_sweeps_measured_first_the_best_first() -> None:
    space = {"optimizers": ["adam", "sgd"], "lr": {"values": [LRS[3], LRS[4], LRS[7], 0.05]}}
    searcher = make_searcher(_sweep("grid", space), max_trials=100, earlier=_earlier_sweep())
    points = list(iter(searcher.suggest, None))
    assert [(p.optimizer, p.hyperparameters["lr"], p.origin) for p in points] == [
        ("adam", LRS[4], "sweep 7 trial 4"),  # 1 - |log10(lr / best)|: 0.98
        ("sgd", LRS[7], "sweep 7 trial 17"),  # 0.85
        ("adam", LRS[3], "sweep 7 trial 3"),  # 0.65
        ("sgd", LRS[4], "sweep 7 trial 14"),  # 0.02
        ("adam", LRS[7], "sweep 7 trial 7"),
        ("sgd", LRS[3], "sweep 7 trial 13"),
        ("adam", 0.05, None),  # never measured: after, in the grid's order
        ("sgd", 0.05, None),
    ]


def _spec(name: str, algorithm: str, num_trials: int, **search: Any) -> dict[str, Any]:
    return {
        "name": name,
        "workload": {"name": "quadratic", "epochs": 2, "steps_per_epoch": 5},
        "space": {"optimizers": ["sgd", "momentum"], "lr": {"low": 1e-3, "high": 0.3, "log": True}},
        "objective": {"metric": "val_loss", "mode": "min"},
        "search": {"algorithm": algorithm, "num_trials": num_trials, "seed": 3, **search},
    }


def test_a_sweep_warm_starts_from_an_earlier_one_through_the_api(live_api: LiveAPI) -> None:
    earlier = live_api.wait(live_api.submit(_spec("warm-source", "random", 8))["id"])
    assert earlier["status"] == "completed", earlier
    source = earlier["id"]
    trials = live_api.trials(source)
    best = min(trials, key=lambda t: t["objective"])

    tpe = _spec("warm-tpe", "tpe", 4, warm_start={"sweeps": [source]})
    tpe["space"]["optimizers"] = ["momentum"]  # sgd's trials are counted, not used
    tpe_sweep = live_api.wait(live_api.submit(tpe)["id"])
    assert tpe_sweep["status"] == "completed", tpe_sweep
    report = live_api.client.get(f"/sweeps/{tpe_sweep['id']}/report").json()
    warm = report["warm_start"]
    sgd = sum(1 for t in trials if t["optimizer"] == "sgd")
    assert warm["sources"] == [
        {
            "sweep_id": source,
            "finished": 8,
            "used": 8 - sgd,
            "left_out": {"sgd not searched": sgd} if sgd else {},
        }
    ]
    # its best momentum configuration trained again first (a quarter of 4 trials), then TPE's
    momentum = min(
        (t for t in trials if t["optimizer"] == "momentum"), key=lambda t: t["objective"]
    )
    assert warm["retrained"] == [0]
    tpe_trials = live_api.trials(tpe_sweep["id"])
    assert tpe_trials[0]["origin"] == f"sweep {source} trial {momentum['number']}"
    assert tpe_trials[0]["hyperparameters"] == momentum["hyperparameters"]
    assert [t["origin"] for t in tpe_trials[1:]] == [None, None, None]
    assert f"{8 - sgd} of sweep {source}'s 8 finished trials" in warm["summary"]

    random = live_api.wait(
        live_api.submit(_spec("warm-random", "random", 4, warm_start={"sweeps": [source]}))["id"]
    )
    own = live_api.trials(random["id"])
    assert own[0]["origin"] == f"sweep {source} trial {best['number']}"
    assert own[0]["hyperparameters"] == best["hyperparameters"]
    assert [t["origin"] for t in own[1:]] == [None, None, None]
    report = live_api.client.get(f"/sweeps/{random['id']}/report").json()
    assert report["warm_start"]["retrained"] == [0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_warm_starts_are_a_404_or_a_422_naming_the_source(live_api: LiveAPI) -> None:
    client = live_api.client
    client.post("/projects", json={"name": "warm-elsewhere"})
    elsewhere = client.post(
        "/sweeps", json=_spec("elsewhere", "random", 1), params={"project": "warm-elsewhere"}
    )
    assert elsewhere.status_code == 201, elsewhere.text
    for missing in (elsewhere.json()["id"], 10**9):
        answer = client.post("/sweeps", json=_spec("w", "tpe", 2, warm_start={"sweeps": [missing]}))
        assert answer.status_code == 404, answer.text
        assert f"sweep {missing} not found" in answer.json()["detail"]
    source = live_api.submit(_spec("warm-bad-source", "random", 1))["id"]
    accuracy = _spec("w", "tpe", 2, warm_start={"sweeps": [source]})
    accuracy["objective"] = {"metric": "val_loss", "mode": "max"}
    answer = client.post("/sweeps", json=accuracy)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "search", "warm_start", "sweeps", "0"]
    assert "val_loss (min), last epoch, this sweep by val_loss (max)" in error["msg"]
    adam = _spec("w", "tpe", 2, warm_start={"sweeps": [source]})
    adam["space"]["optimizers"] = ["adam"]
    answer = client.post("/sweeps", json=adam)
    assert answer.status_code == 422, answer.text
    assert "none of which this sweep searches (adam)" in answer.text
    client.post(f"/sweeps/{source}/cancel")
