"""Search algorithms, schedulers, repeats, lr: auto and PBT, end to end through the API on a
real server and Ray.

These run on SQLite only: what they exercise lives in the controller and the workers, and the
storage they use (trials, metrics, search params, JSON columns) is covered on both databases by
test_api.py, test_dashboard_api.py and test_searcher_restart.py. It keeps `make test` short.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import pytest

from optisweep.optimizers import get_spec
from tests.service.conftest import LiveAPI

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

FAMILIES = ["adam", "sgd", "momentum"]


def _spec(algorithm: str, **search: Any) -> dict[str, Any]:
    return {
        "name": f"search-{algorithm}",
        "workload": {"name": "rosenbrock", "epochs": 3, "steps_per_epoch": 10},
        "space": {
            "optimizers": FAMILIES,
            "lr": {"low": 1e-4, "high": 1e-2, "log": True},
            "beta1": {"low": 0.8, "high": 0.95},
            "beta2": {"low": 0.9, "high": 0.9999, "log_one_minus": True},
            "overrides": {"momentum": {"nesterov": {"values": [False, True]}}},
        },
        "search": {"algorithm": algorithm, "num_trials": 10, "seed": 3, **search},
        "objective": {"metric": "val_loss", "mode": "min"},
    }


def _most_at_once(trials: list[dict[str, Any]]) -> int:
    """The most trials that were running at the same moment (from their start/finish times)."""
    events = []
    for trial in trials:
        events.append((datetime.fromisoformat(trial["started_at"]), 1))
        events.append((datetime.fromisoformat(trial["finished_at"]), -1))
    running = most = 0
    for _, change in sorted(events):
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize("algorithm", ["sobol", "tpe", "cmaes", "gp", "nsga2"])
def test_an_adaptive_algorithm_runs_its_trials_within_the_space(
    live_api: LiveAPI, algorithm: str
) -> None:
    created = live_api.submit(_spec(algorithm, concurrency=2))
    assert created["num_trials"] == 10  # asked for as the sweep runs, counted up front
    sweep = live_api.wait(created["id"])
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"], sort="number", order="asc")
    assert [t["number"] for t in trials] == list(range(10))
    assert {t["status"] for t in trials} <= {"completed", "diverged"}
    assert _most_at_once(trials) <= 2
    for trial in trials:
        hyperparameters = trial["hyperparameters"]
        assert 1e-4 <= hyperparameters["lr"] <= 1e-2
        spec = get_spec(trial["optimizer"])
        # Each family has exactly its own hyperparameters, betas where it has them.
        assert set(hyperparameters) == set(spec.hyperparameters)
        if trial["optimizer"] == "adam":
            beta1, beta2 = hyperparameters["betas"]
            assert 0.8 <= beta1 <= 0.95
            assert 0.9 <= beta2 <= 0.9999
        if trial["optimizer"] == "momentum":
            assert 0.8 <= hyperparameters["momentum"] <= 0.95
    leaderboard = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()["entries"]
    assert leaderboard, "completed trials are ranked"


def test_grid_search_respects_its_concurrency(live_api: LiveAPI) -> None:
    spec = _spec("grid", concurrency=1)
    spec["space"] = {"optimizers": ["sgd"], "lr": {"values": [1e-4, 2e-4, 3e-4, 4e-4]}}
    del spec["search"]["num_trials"]
    sweep = live_api.wait(live_api.submit(spec)["id"])
    trials = live_api.trials(sweep["id"])
    assert len(trials) == 4
    assert all(t["pack_id"] is None for t in trials)  # one at a time: nothing to pack
    assert _most_at_once(trials) == 1


@pytest.mark.parametrize(
    ("search", "space", "loc", "message"),
    [
        ({"algorithm": "tpe"}, None, ["body", "search"], "num_trials is required for tpe"),
        (
            {"algorithm": "bayes", "num_trials": 4},
            None,
            ["body", "search", "algorithm"],
            "'grid', 'random', 'sobol', 'tpe', 'cmaes', 'gp' or 'nsga2'",
        ),
        (
            {"algorithm": "tpe", "num_trials": 4, "concurrency": 0},
            None,
            ["body", "search", "concurrency"],
            "greater than or equal to 1",
        ),
        (
            {"algorithm": "random", "num_trials": 4},
            {"lr": {"low": 1e-4, "high": 0.1, "log_one_minus": True}},
            ["body", "space", "lr"],
            "log_one_minus is for betas",
        ),
        (
            {"algorithm": "random", "num_trials": 4},
            {"beta2": {"low": 0.9, "high": 1.0, "log_one_minus": True}},
            ["body", "space", "beta2"],
            "high < 1",
        ),
    ],
)
def test_bad_search_settings_are_422_naming_the_field(
    live_api: LiveAPI,
    search: dict[str, Any],
    space: dict[str, Any] | None,
    loc: list[str],
    message: str,
) -> None:
    spec = _spec("random")
    spec["search"] = search
    if space is not None:
        spec["space"].update(space)
    before = live_api.client.get("/sweeps", params={"limit": 1}).json()["items"]
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and message in e["msg"] for e in errors), errors
    assert live_api.client.get("/sweeps", params={"limit": 1}).json()["items"] == before


def _steps(live_api: LiveAPI, trial_id: int, metric: str = "val_loss") -> list[int]:
    series = live_api.client.get(f"/trials/{trial_id}/metrics").json()["series"]
    (found,) = [s for s in series if s["name"] == metric]
    steps: list[int] = found["steps"]
    return steps


@pytest.mark.parametrize(
    "scheduler",
    [
        {"name": "asha", "grace_period": 1, "reduction_factor": 3},
        {"name": "hyperband", "min_epochs": 1, "reduction_factor": 3},
        {"name": "median", "warmup_epochs": 2, "min_trials": 2},
    ],
    ids=lambda s: s["name"],
)
def test_a_scheduler_stops_trials_early_and_keeps_their_curves(
    live_api: LiveAPI, scheduler: dict[str, Any]
) -> None:
    # Four at a time: later trials meet the curves of finished ones (the median rule needs them).
    spec = _spec("random", scheduler=scheduler, num_trials=12, concurrency=4)
    spec["workload"]["epochs"] = 9
    spec["space"]["lr"] = {"low": 1e-5, "high": 1e-2, "log": True}  # curves far apart
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"])
    stopped = [t for t in trials if t["status"] == "stopped"]
    assert stopped, "the scheduler stopped no trial"
    assert any(t["status"] == "completed" for t in trials)
    for trial in trials:
        steps = _steps(live_api, trial["id"])
        assert steps == list(range(1, len(steps) + 1))  # every epoch once, in order
        if trial["status"] == "stopped":
            assert trial["error"] is None
            assert len(steps) < 9
        else:
            assert len(steps) == 9


def test_the_scheduler_name_alone_is_enough(live_api: LiveAPI) -> None:
    spec = _spec("tpe", scheduler="median", num_trials=4)
    created = live_api.submit(spec)
    assert created["spec"]["search"]["scheduler"] == {
        "name": "median",
        "warmup_epochs": 1,
        "min_trials": 5,
    }
    assert live_api.wait(created["id"])["status"] == "completed"


@pytest.mark.parametrize(
    ("scheduler", "loc", "message"),
    [
        (
            {"name": "asha", "grace_period": 4},
            ["body", "search", "scheduler", "grace_period"],
            "4 is more than the workload's 3 epochs",
        ),
        (
            {"name": "hyperband", "min_epochs": 5},
            ["body", "search", "scheduler", "min_epochs"],
            "more than the workload's 3 epochs",
        ),
        ("pbs", ["body", "search", "scheduler"], "expected one of 'asha', 'hyperband', 'median'"),
        (
            {"name": "asha", "reduction_factor": 1},
            ["body", "search", "scheduler", "asha", "reduction_factor"],
            "greater than or equal to 2",
        ),
    ],
)
def test_bad_schedulers_are_422_naming_the_field(
    live_api: LiveAPI, scheduler: Any, loc: list[str], message: str
) -> None:
    response = live_api.client.post("/sweeps", json=_spec("random", scheduler=scheduler))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and message in e["msg"] for e in errors), errors


def _successive_halving(curves: list[dict[int, float]], *, rf: int, epochs: int) -> list[int]:
    """Epochs each trial trains under asynchronous successive halving (minimising), trials run
    one after another: at epochs rf^0, rf^1, ... a trial goes on only if its value is among
    the best len(competing) // rf (at least 1) of every trial that reached that epoch so far."""
    rung_values: dict[int, list[float]] = {}
    spent = []
    for curve in curves:
        stop_at = epochs
        rung = 0
        while rf**rung < epochs:
            epoch = rf**rung
            competing = rung_values.setdefault(rung, [])
            competing.append(curve[epoch])
            keep = max(len(competing) // rf, 1)
            if curve[epoch] > sorted(competing)[keep - 1]:
                stop_at = epoch
                break
            rung += 1
        spent.append(stop_at)
    return spent


def test_successive_halving_spends_exactly_its_budget(live_api: LiveAPI) -> None:
    spec = {
        "name": "asha-budget",
        "workload": {"name": "quadratic", "epochs": 81, "steps_per_epoch": 1},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
        "search": {
            "algorithm": "random",
            "num_trials": 81,
            "seed": 5,
            "concurrency": 1,  # one at a time: the order, so the budget, is deterministic
            "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 3},
        },
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    sweep = live_api.wait(live_api.submit(spec)["id"], timeout=600)
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"], sort="number", order="asc")
    curves = []
    for trial in trials:
        series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
        (loss,) = [s for s in series if s["name"] == "val_loss"]
        curves.append(dict(zip(loss["steps"], loss["values"], strict=True)))
    spent = [len(curve) for curve in curves]
    expected = _successive_halving(curves, rf=3, epochs=81)
    assert spent == expected
    assert {1, 3, 9, 27} <= set(spent)  # trials stopped at every rung
    assert sum(spent) < 81 * 81 / 4


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_repeats_rank_configurations_by_their_mean(live_api: LiveAPI, algorithm: str) -> None:
    spec = _spec(algorithm, num_trials=4, repeats=3)
    created = live_api.submit(spec)
    assert created["num_trials"] == 12
    sweep = live_api.wait(created["id"])
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"], sort="number", order="asc")
    assert [t["number"] for t in trials] == list(range(12))
    configurations = [trials[i : i + 3] for i in range(0, 12, 3)]
    for repeats in configurations:
        assert len({str(t["hyperparameters"]) for t in repeats}) == 1  # same configuration
        assert len({t["seed"] for t in repeats}) == 3  # three seeds
    board = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()
    assert board["entries"]
    for entry in board["entries"]:
        index = entry["trial"]["number"] // 3
        values = [t["objective"] for t in configurations[index] if t["status"] == "completed"]
        assert entry["repeats"] == len(values)
        assert entry["objective_mean"] == pytest.approx(sum(values) / len(values))
        if len(values) > 1:
            assert entry["objective_std"] == pytest.approx(statistics.stdev(values))
    means = [entry["objective_mean"] for entry in board["entries"]]
    assert means == sorted(means)  # val_loss: the lowest mean ranks first


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_too_many_repeats_are_422(live_api: LiveAPI, algorithm: str) -> None:
    spec = _spec(algorithm, num_trials=5000, repeats=3)
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "search", "repeats"]
    assert "5000 configurations x 3 repeats" in error["msg"]


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_lr_auto_runs_a_range_test_and_searches_within_its_bounds(
    live_api: LiveAPI, algorithm: str
) -> None:
    spec = _spec(algorithm, num_trials=6)
    spec["workload"] = {"name": "mlp-digits", "epochs": 2, "batch_size": 64}
    spec["space"]["lr"] = "auto"
    spec["space"]["schedule"] = {"kind": {"values": ["constant", "cosine"]}, "per": "step"}
    spec["space"]["schedule"]["warmup_steps"] = {"low": 0, "high": 20}
    spec["space"]["clip_norm"] = {"values": [None, 1.0]}
    spec["objective"] = {"metric": "val_accuracy", "mode": "max"}
    created = live_api.submit(spec)
    assert created["num_trials"] == 6
    sweep = live_api.wait(created["id"])
    assert sweep["status"] == "completed", sweep
    ranges = sweep["lr_range"]
    assert set(ranges) == set(FAMILIES)
    for family in FAMILIES:
        found = ranges[family]
        assert 0 < found["low"] < found["high"]
        assert len(found["lrs"]) == len(found["losses"]) >= 10
        assert found["lrs"] == sorted(found["lrs"])  # the lr grew every step
        best = min(range(len(found["losses"])), key=found["losses"].__getitem__)
        assert found["high"] == pytest.approx(found["lrs"][best])  # the lowest loss's lr
    trials = live_api.trials(sweep["id"])
    assert len(trials) == 6
    for trial in trials:
        bounds = ranges[trial["optimizer"]]
        assert bounds["low"] * (1 - 1e-9) <= trial["hyperparameters"]["lr"]
        assert trial["hyperparameters"]["lr"] <= bounds["high"] * (1 + 1e-9)
        assert trial["settings"]["schedule"]["kind"] in ("constant", "cosine")
        assert 0 <= trial["settings"]["schedule"]["warmup_steps"] <= 20


def test_lr_auto_with_grid_search_is_422(live_api: LiveAPI) -> None:
    spec = _spec("grid")
    spec["space"]["lr"] = "auto"
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "lr"]
    assert "'auto' needs a sampling algorithm" in error["msg"]


def test_pbt_exploits_within_families_inside_one_pack(live_api: LiveAPI) -> None:
    spec = _spec("random", num_trials=8)
    spec["workload"] = {"name": "mlp-digits", "epochs": 6, "batch_size": 64}
    spec["space"] = {
        "optimizers": ["adam", "momentum"],
        "lr": {"low": 1e-4, "high": 0.3, "log": True},
        "clip_norm": {"values": [None, 1.0]},
        "schedule": {"kind": {"values": ["constant", "cosine"]}},
    }
    spec["search"]["scheduler"] = {"name": "pbt", "interval": 2, "quantile": 0.5}
    spec["objective"] = {"metric": "val_accuracy", "mode": "max"}
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed", sweep
    trials = {t["id"]: t for t in live_api.trials(sweep["id"])}
    assert len({t["pack_id"] for t in trials.values()}) == 1  # the population is one pack
    exploited = [t for t in trials.values() if t["hyperparameter_history"]]
    assert exploited, "no member copied another"
    epochs = set()
    for trial in exploited:
        for entry in trial["hyperparameter_history"]:
            epochs.add(entry["epoch"])
            source = trials[entry["source_trial_id"]]
            assert entry["source_trial"] == source["number"]  # named as users name trials
            assert source["optimizer"] == trial["optimizer"]  # within its family
            assert source["id"] != trial["id"]
        assert trial["hyperparameters"] == trial["hyperparameter_history"][-1]["hyperparameters"]
        assert _steps(live_api, trial["id"], "val_accuracy") == list(range(1, 7))
        # It trains on with its source's schedule and clipping, and says so.
        last = trial["hyperparameter_history"][-1]
        source = trials[last["source_trial_id"]]
        if all(e["epoch"] < last["epoch"] for e in source["hyperparameter_history"] or []):
            assert trial["settings"] == source["settings"]
    assert epochs <= {2, 4}


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"search": {"algorithm": "tpe"}}, ["body", "search", "scheduler"], "pbt needs random"),
        ({"resources": {"pack": False}}, ["body", "resources", "pack"], "needs pack: true"),
        (
            {"scheduler": {"name": "pbt", "interval": 7}},
            ["body", "search", "scheduler", "interval"],
            "7 is more than the workload's 3 epochs",
        ),
    ],
)
def test_bad_pbt_settings_are_422(
    live_api: LiveAPI, change: dict[str, Any], loc: list[str], message: str
) -> None:
    spec = _spec("random", scheduler={"name": "pbt", "interval": 1})
    spec["search"].update(change.get("search", {}))
    if "scheduler" in change:
        spec["search"]["scheduler"] = change["scheduler"]
    spec.setdefault("resources", {}).update(change.get("resources", {}))
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert message in error["msg"]
