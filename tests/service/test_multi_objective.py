"""Several objectives: the spec's list form and its 422s, the Optuna study told every value,
and the leaderboard's Pareto front checked against one computed here from the metrics."""

from __future__ import annotations

import math
from typing import Any

import pytest

from optisweep.service.search import AdaptiveSearcher
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.search_spec import ObjectiveSpec
from tests.service.conftest import LiveAPI

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""The live tests run on SQLite only, as test_search_algorithms.py does."""

TWO = [
    {"metric": "val_loss", "mode": "min"},
    # Opposed to val_loss, so the front holds several trials and mixes directions.
    {"metric": "distance_to_optimum", "mode": "max"},
]


def _spec(objective: Any, **search: Any) -> dict[str, Any]:
    return {
        "name": "two-objectives",
        "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 10},
        "space": {"optimizers": ["adam", "sgd"], "lr": {"low": 1e-4, "high": 1e-1, "log": True}},
        "search": {"algorithm": "tpe", "num_trials": 12, "seed": 2, "concurrency": 2, **search},
        "objective": objective,
    }


def test_the_list_form_is_the_primary_and_also_and_a_single_objective_stores_as_before() -> None:
    several = ObjectiveSpec.model_validate(TWO)
    assert (several.metric, several.mode) == ("val_loss", "min")
    assert [(o.metric, o.mode) for o in several.objectives] == [
        ("val_loss", "min"),
        ("distance_to_optimum", "max"),
    ]
    stored = SweepCreate.model_validate(_spec(TWO)).model_dump(mode="json")["objective"]
    assert stored == {**TWO[0], "also": TWO[1:], "summary": "last"}  # the default, stated
    assert ObjectiveSpec.model_validate(stored) == several  # a stored sweep loads again
    single = SweepCreate.model_validate(_spec(TWO[0])).model_dump(mode="json")["objective"]
    assert single == {**TWO[0], "summary": "last"}


@SQLITE
@pytest.mark.parametrize(
    ("objective", "search", "loc", "message"),
    [
        (
            [TWO[0], {"metric": "val_accuracy", "mode": "max"}],
            {},
            ["body", "objective", "1", "metric"],
            "does not report 'val_accuracy'",
        ),
        ([TWO[0], {"metric": "val_loss", "mode": "max"}], {}, ["body", "objective"], "1.metric"),
        ([TWO[0], {"metric": "train_loss", "mode": "up"}], {}, ["body", "objective"], "1.mode"),
        (
            [
                TWO[0],
                TWO[1],
                {"metric": "train_loss", "mode": "min"},
                {"metric": "x", "mode": "min"},
            ],
            {},
            ["body", "objective"],
            "1 to 3 objectives",
        ),
        (TWO, {"algorithm": "cmaes"}, ["body", "search", "algorithm"], "searches one objective"),
        (
            TWO,
            {"algorithm": "random", "scheduler": "pbt"},
            ["body", "search", "scheduler"],
            "pbt ranks its population by one objective",
        ),
    ],
    ids=["unknown metric", "duplicate", "bad mode", "four", "cmaes", "pbt"],
)
def test_bad_objectives_are_422_naming_the_field(
    live_api: LiveAPI,
    objective: Any,
    search: dict[str, Any],
    loc: list[str],
    message: str,
) -> None:
    response = live_api.client.post("/sweeps", json=_spec(objective, **search))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"] == loc and message in e["msg"] for e in errors), errors


def test_the_adaptive_searcher_tells_every_objective() -> None:
    spec = SweepCreate.model_validate(_spec(TWO))
    searcher = AdaptiveSearcher(spec.space, algorithm="nsga2", seed=0, mode="min", also=["max"])
    for _ in range(4):
        searcher.suggest()
    searcher.on_complete(0, "completed", 1.0, (2.0,))
    searcher.on_complete(1, "diverged", math.nan, (3.0,))  # infeasible, the worst val_loss
    searcher.on_complete(2, "completed", 0.5, (None,))  # a value missing: failed
    searcher.on_complete(3, "completed", 0.5, (math.inf,))
    trials = searcher._study.get_trials(deepcopy=False)  # white box: what Optuna was told
    assert [t.values for t in trials] == [[1.0, 2.0], [1.0, 3.0], None, None]
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]


def _dominates(a: list[float], b: list[float]) -> bool:
    # val_loss is minimised, distance_to_optimum maximised.
    no_worse = a[0] <= b[0] and a[1] >= b[1]
    return no_worse and (a[0] < b[0] or a[1] > b[1])


@SQLITE
def test_a_two_objective_sweep_searches_both_and_its_leaderboard_shows_the_front(
    live_api: LiveAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    told: list[int] = []
    original = AdaptiveSearcher.on_complete

    def spy(self: AdaptiveSearcher, *args: Any) -> None:
        original(self, *args)
        told[:] = [len(t.values) for t in self._study.get_trials(deepcopy=False) if t.values]

    monkeypatch.setattr(AdaptiveSearcher, "on_complete", spy)
    sweep = live_api.wait(live_api.submit(_spec(TWO))["id"])
    assert sweep["status"] == "completed", sweep
    assert told
    assert set(told) == {2}  # the study holds two values per finished trial

    values: dict[int, list[float]] = {}
    for trial in live_api.trials(sweep["id"]):
        if trial["status"] not in ("completed", "stopped") or trial["objective"] is None:
            continue
        series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
        distance = next(s for s in series if s["name"] == "distance_to_optimum")
        final = [trial["objective"], distance["values"][-1]]
        if all(isinstance(v, float) and math.isfinite(v) for v in final):
            values[trial["number"]] = final
    front = [n for n, v in values.items() if not any(_dominates(w, v) for w in values.values())]
    expected = sorted(front, key=lambda n: (values[n][0], -values[n][1], n))

    board = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()
    assert board["objectives"] == TWO
    assert [p["trial"] for p in board["pareto_front"]] == expected
    assert [p["values"] for p in board["pareto_front"]] == [values[n] for n in expected]
    assert len(expected) > 1  # opposed objectives: a front of several trials
    assert board["metric"] == "val_loss"  # the primary ranks families
    assert board["entries"]


@SQLITE
def test_a_single_objective_leaderboard_has_no_front(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    board = live_api.client.get(f"/sweeps/{finished_grid['id']}/leaderboard").json()
    assert board["objectives"] == []
    assert board["pareto_front"] is None
