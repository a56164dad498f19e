"""Batch size and gradient clipping searched like hyperparameters: through grid, random and
TPE, stored on each trial, packs formed by batch size, every bad value a 422 naming it."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from optisweep.workers.runtime import run_schedule
from optisweep.workers.specs import PackSpec
from optisweep.workers.train import train_trial
from tests.service.conftest import LiveAPI


def _spec(name: str, search: dict[str, Any], **space: Any) -> dict[str, Any]:
    return {
        "name": name,
        "workload": {"name": "mlp-digits", "epochs": 1},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"values": [0.01]}, **space},
        "search": search,
        "objective": {"metric": "val_accuracy", "mode": "max"},
    }


def test_a_grid_over_batch_size_and_clipping_packs_by_batch_size(live_api: LiveAPI) -> None:
    spec = _spec(
        "gd-sgd-minibatch",
        {"algorithm": "grid"},
        batch_size={"values": ["full", 32]},
        clip_norm={"values": [None, 1.0]},
    )
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert (sweep["status"], sweep["num_trials"]) == ("completed", 8)
    trials = live_api.trials(sweep["id"])
    assert sorted(
        (t["optimizer"], str(t["settings"]["batch_size"]), t["settings"]["clip_norm"] or 0)
        for t in trials
    ) == sorted(
        (name, size, clip)
        for name in ("sgd", "adam")
        for size in ("full", "32")
        for clip in (0, 1.0)
    )
    packs: dict[str, set[Any]] = {}
    for trial in trials:
        if trial["pack_id"] is not None:
            packs.setdefault(trial["pack_id"], set()).add(trial["settings"]["batch_size"])
    assert packs  # some trials were packed, and never two batch sizes in one pack
    assert all(len(sizes) == 1 for sizes in packs.values())
    assert all(t["status"] == "completed" for t in trials)
    parallel = live_api.client.get(f"/sweeps/{sweep['id']}/parallel").json()
    assert parallel["settings"] == ["batch_size", "clip_norm"]  # their axes on the chart
    assert {str(row["batch_size"]) for row in parallel["rows"]} == {"full", "32"}
    assert all(row["beta1"] is None for row in parallel["rows"] if row["optimizer"] == "sgd")
    lr_series = live_api.client.get(f"/sweeps/{sweep['id']}/lr-sensitivity").json()["families"]
    assert {f["optimizer"] for f in lr_series} == {
        f"{name}, batch {size}" for name in ("sgd", "adam") for size in ("full", 32)
    }  # the lr chart split by batch size, which this sweep varies
    importances = live_api.client.get(f"/sweeps/{sweep['id']}/importance").json()
    assert {"batch_size", "clip_norm"} <= set(importances["importances"])
    exported = csv.DictReader(
        io.StringIO(live_api.client.get(f"/sweeps/{sweep['id']}/trials.csv").text)
    )
    by_id = {t["id"]: t["settings"] for t in trials}
    for row in exported:
        settings = by_id[int(row["id"])]
        assert row["batch_size"] == str(settings["batch_size"])
        assert row["clip_norm"] == (
            "" if settings["clip_norm"] is None else str(settings["clip_norm"])
        )


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_sampling_searchers_draw_batch_sizes_and_clip_norms_in_range(
    live_api: LiveAPI, algorithm: str
) -> None:
    spec = _spec(
        f"settings-{algorithm}",
        {"algorithm": algorithm, "num_trials": 6, "seed": 2},
        batch_size={"type": "int", "low": 16, "high": 256, "log": True},
        clip_norm={"low": 0.1, "high": 10.0, "log": True},
    )
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    trials = live_api.trials(sweep["id"])
    assert len(trials) == 6
    for trial in trials:
        assert 16 <= trial["settings"]["batch_size"] <= 256
        assert 0.1 <= trial["settings"]["clip_norm"] <= 10.0
    assert len({t["settings"]["batch_size"] for t in trials}) > 1


@pytest.mark.parametrize(
    ("space", "loc", "message"),
    [
        ({"batch_size": 0}, ["body", "space", "batch_size"], "a batch size is an int"),
        ({"batch_size": {"values": [64, 70000]}}, ["body", "space", "batch_size"], "65536"),
        ({"batch_size": {"low": 1, "high": 8}}, ["body", "space", "batch_size"], "whole numbers"),
        ({"clip_norm": -1.0}, ["body", "space", "clip_norm"], "finite number > 0"),
        ({"clip_norm": {"values": [0.0]}}, ["body", "space", "clip_norm"], "finite number > 0"),
        ({"clip_norm": "full"}, ["body", "space", "clip_norm"], "a clip norm is a float"),
    ],
)
def test_a_bad_batch_size_or_clip_norm_is_a_422_naming_it(
    live_api: LiveAPI, space: dict[str, Any], loc: list[str], message: str
) -> None:
    response = live_api.client.post("/sweeps", json=_spec("bad", {"algorithm": "grid"}, **space))
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == loc
    assert message in error["msg"]


def test_a_batch_size_the_workload_refuses_is_a_422(live_api: LiveAPI) -> None:
    spec = _spec("bad", {"algorithm": "grid"}, batch_size={"values": [1, 8]})
    spec["workload"] = {"name": "rosenbrock", "epochs": 1}  # a test function: batch size 1
    spec["objective"] = {"metric": "val_loss", "mode": "min"}
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "batch_size"]
    assert "8 is not a batch size of this workload" in error["msg"]


def test_a_full_batch_trial_takes_one_step_per_epoch() -> None:
    steps = []
    spec = PackSpec.single(
        workload={"name": "mlp-digits", "epochs": 3, "batch_size": "full"},
        optimizer="sgd",
        hyperparameters={"lr": 0.5},
        seed=0,
        device="cpu",
    )
    result = train_trial(spec, checkpoint=lambda saved: steps.append(saved.step))
    assert result.status == "completed"
    assert steps == [1, 2, 3]  # gradient descent: the whole training set per step


def test_a_shared_hyperparameter_reaches_every_family_that_has_it(live_api: LiveAPI) -> None:
    spec = _spec(
        "shared",
        {"algorithm": "grid"},
        hyperparameters={"weight_decay": {"values": [0.0, 0.01]}, "eps": 1e-6},
        overrides={"adam": {"weight_decay": 0.1}},  # a family's own override wins
    )
    spec["space"]["optimizers"] = ["sgd", "adam"]
    sweep = live_api.wait(live_api.submit(spec)["id"])
    trials = live_api.trials(sweep["id"])
    sgd = sorted(t["hyperparameters"]["weight_decay"] for t in trials if t["optimizer"] == "sgd")
    adam = [t["hyperparameters"] for t in trials if t["optimizer"] == "adam"]
    assert sgd == [0.0, 0.01]  # searched for sgd
    assert [h["weight_decay"] for h in adam] == [0.1]  # adam's override, one trial
    assert [h["eps"] for h in adam] == [1e-6]  # sgd has no eps: adam's alone
    assert all("eps" not in t["hyperparameters"] for t in trials if t["optimizer"] == "sgd")


@pytest.mark.parametrize(
    ("shared", "message"),
    [
        ({"nesterov": True}, "nesterov: no family of this sweep has it"),
        ({"lr": 0.1}, "lr: set it with space.lr"),
        ({"eps": -1.0}, "eps (for adam)"),
    ],
)
def test_a_bad_shared_hyperparameter_is_a_422(
    live_api: LiveAPI, shared: dict[str, Any], message: str
) -> None:
    spec = _spec("bad", {"algorithm": "grid"}, hyperparameters=shared)
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "hyperparameters"]
    assert message in error["msg"]


def test_a_batch_size_larger_than_the_training_set_is_a_422(live_api: LiveAPI) -> None:
    # A worker builds the workload to know its size (digits: 1,437 training examples).
    spec = _spec("too-large", {"algorithm": "grid"}, batch_size={"values": ["full", 2000]})
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "batch_size"]
    assert "2000 is larger than the training set (1437 examples)" in error["msg"]


def test_a_grid_over_schedules_trains_each_kind_once_with_its_parameters(
    live_api: LiveAPI,
) -> None:
    schedule = {
        "kind": {"values": ["constant", "cosine", "step"]},
        "min_factor": {"values": [0.0, 0.5]},  # cosine reads it; the others do not
        "gamma": 0.5,
    }
    spec = _spec("schedules", {"algorithm": "grid"}, schedule=schedule)
    spec["workload"]["epochs"] = 3
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    trials = live_api.trials(sweep["id"])
    drawn = sorted(
        (t["optimizer"], json.dumps(t["settings"]["schedule"], sort_keys=True)) for t in trials
    )
    expected = [
        {"kind": "constant"},
        {"kind": "cosine", "min_factor": 0.0},
        {"kind": "cosine", "min_factor": 0.5},
        {"kind": "step", "gamma": 0.5},
    ]
    assert drawn == sorted(
        (name, json.dumps(one, sort_keys=True)) for name in ("sgd", "adam") for one in expected
    )  # 4 per family, not 3 x 2: a kind's unread parameter does not repeat it
    # What the workers were asked to train: the optimizer module's schedules, over the run.
    from optisweep.service.controller.dispatcher import schedule_of
    from optisweep.service.sweeps.schemas import SweepCreate
    from optisweep.service.trials.models import Trial

    typed = SweepCreate.model_validate(spec)
    cosine = Trial(settings={"schedule": {"kind": "cosine", "min_factor": 0.5}})
    step = Trial(settings={"schedule": {"kind": "step", "gamma": 0.5}})
    run = {"epochs": 3, "steps": 23}  # the worker sets what is left to the run's length
    assert run_schedule(schedule_of(typed, cosine), **run).model_dump() == {
        "kind": "cosine",
        "t_max": 3,
        "min_factor": 0.5,
        "warmup": 0,
        "per": "epoch",
    }
    assert run_schedule(schedule_of(typed, step), **run).model_dump() == {
        "kind": "step",
        "step_size": 1,
        "gamma": 0.5,
        "warmup": 0,
        "per": "epoch",
    }
    assert schedule_of(typed, Trial(settings=None)).kind == "constant"
    lr_series = live_api.client.get(f"/sweeps/{sweep['id']}/lr-sensitivity").json()["families"]
    assert {f["optimizer"] for f in lr_series} == {
        f"{name}, {kind}" for name in ("sgd", "adam") for kind in ("constant", "cosine", "step")
    }  # the lr chart split by schedule kind, which this sweep varies
    parallel = live_api.client.get(f"/sweeps/{sweep['id']}/parallel").json()
    assert parallel["settings"] == ["schedule"]
    assert {row["schedule"] for row in parallel["rows"]} == {"constant", "cosine", "step"}
    importances = live_api.client.get(f"/sweeps/{sweep['id']}/importance").json()
    assert "schedule" in importances["importances"]
    lines = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()["families"]
    assert all(" schedule" in family["summary"] for family in lines)


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_sampling_searchers_draw_schedule_kinds(live_api: LiveAPI, algorithm: str) -> None:
    schedule = {"kind": {"values": ["exponential", "cosine"]}, "gamma": {"low": 0.5, "high": 0.99}}
    spec = _spec(f"schedules-{algorithm}", {"algorithm": algorithm, "num_trials": 6, "seed": 4})
    spec["space"]["schedule"] = schedule
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    for trial in live_api.trials(sweep["id"]):
        drawn = trial["settings"]["schedule"]
        assert drawn["kind"] in ("exponential", "cosine")
        if drawn["kind"] == "exponential":
            assert 0.5 <= drawn["gamma"] <= 0.99
        else:
            assert "gamma" not in drawn


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"kind": "linear"}, "unknown schedule kind 'linear' (valid: constant, step"),
        ({"kind": "step", "gamma": 0.0}, "gamma: out of range"),
        ({"kind": "step", "step_size": 0}, "step_size: out of range"),
        ({"kind": "cosine", "min_factor": 1.5}, "min_factor: out of range"),
        ({"kind": "cosine", "warmup_steps": -1}, "warmup_steps: out of range"),
        ({"kind": "cosine", "warmup_steps": {"values": [0, 2.5]}}, "warmup_steps: out of range"),
        ({"kind": "cosine", "per": "batch"}, "Input should be 'epoch' or 'step'"),
        # the run is 1 epoch, of 23 steps at the workload's batch size of 64
        (
            {"kind": "cosine", "warmup_steps": 2},
            "a warm-up of 2 epochs is longer than the run of 1",
        ),
        (
            {"kind": "constant", "per": "step", "warmup_steps": {"values": [0, 24]}},
            "a warm-up of 24 steps is longer than the run at batch size 64: 23 steps",
        ),
    ],
)
def test_a_bad_schedule_is_a_422_naming_it(
    live_api: LiveAPI, schedule: dict[str, Any], message: str
) -> None:
    response = live_api.client.post(
        "/sweeps", json=_spec("bad", {"algorithm": "grid"}, schedule=schedule)
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"][:3] == ["body", "space", "schedule"]
    assert message in error["msg"]


def test_a_per_step_cosine_with_a_warm_up_that_fits_full_batch_runs_too(live_api: LiveAPI) -> None:
    """Batch size full is one step an epoch: a warm-up of 3 steps fits 3 epochs, not 2."""
    schedule = {"kind": "cosine", "per": "step", "warmup_steps": 3}
    spec = _spec("full-warm", {"algorithm": "grid"}, batch_size={"values": ["full", 64]})
    spec["space"]["schedule"] = schedule
    spec["workload"]["epochs"] = 2
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422
    assert "at batch size full: 2 steps (2 epochs x 1)" in response.json()["detail"][0]["msg"]
    spec["workload"]["epochs"] = 3
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    trials = live_api.trials(sweep["id"])
    assert len(trials) == 4
    assert all(t["settings"]["schedule"] == {"kind": "cosine", "warmup_steps": 3} for t in trials)


@pytest.mark.parametrize(
    ("algorithm", "warmup"),
    [
        ("grid", {"values": [0, 30]}),
        ("random", {"low": 0, "high": 40}),
        ("tpe", {"low": 0, "high": 40}),
    ],
)
def test_every_searcher_draws_warm_ups(live_api: LiveAPI, algorithm: str, warmup: Any) -> None:
    schedule = {
        "kind": {"values": ["constant", "exponential"]},
        "per": "step",
        "warmup_steps": warmup,
    }
    search = {"algorithm": algorithm, "seed": 3} | (
        {} if algorithm == "grid" else {"num_trials": 6}
    )
    spec = _spec(f"warm-{algorithm}", search, schedule=schedule)
    spec["workload"]["epochs"] = 2  # 46 steps at batch size 64
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    drawn = [t["settings"]["schedule"] for t in live_api.trials(sweep["id"])]
    assert all(isinstance(d["warmup_steps"], int) and 0 <= d["warmup_steps"] <= 40 for d in drawn)
    assert len({d["warmup_steps"] for d in drawn}) > 1
    if algorithm == "grid":
        assert len(drawn) == 8  # 2 families x 2 kinds x 2 warm-ups
    parallel = live_api.client.get(f"/sweeps/{sweep['id']}/parallel").json()
    assert parallel["settings"] == ["schedule", "warmup_steps"]
    assert sorted(row["warmup_steps"] for row in parallel["rows"]) == sorted(
        d["warmup_steps"] for d in drawn
    )
    importances = live_api.client.get(f"/sweeps/{sweep['id']}/importance").json()
    assert "warmup_steps" in importances["importances"]


def test_a_family_overrides_the_shared_schedule_field_by_field(live_api: LiveAPI) -> None:
    """sgd steps its lr while adam follows the shared cosine; both keep the shared warm-ups."""
    spec = _spec(
        "own-schedules",
        {"algorithm": "grid"},
        schedule={"kind": "cosine", "warmup_steps": {"values": [0, 2]}},
        overrides={"sgd": {"schedule": {"kind": "step", "gamma": 0.5}}},
    )
    spec["workload"]["epochs"] = 3
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    drawn = sorted(
        (t["optimizer"], json.dumps(t["settings"]["schedule"], sort_keys=True))
        for t in live_api.trials(sweep["id"])
    )
    assert drawn == sorted(
        [
            ("adam", json.dumps({"kind": "cosine", "warmup_steps": 0})),
            ("adam", json.dumps({"kind": "cosine", "warmup_steps": 2})),
            ("sgd", json.dumps({"gamma": 0.5, "kind": "step", "warmup_steps": 0})),
            ("sgd", json.dumps({"gamma": 0.5, "kind": "step", "warmup_steps": 2})),
        ]
    )
    lr_series = live_api.client.get(f"/sweeps/{sweep['id']}/lr-sensitivity").json()["families"]
    assert {f["optimizer"] for f in lr_series} == {"sgd, step", "adam, cosine"}


@pytest.mark.parametrize("algorithm", ["random", "tpe", "cmaes", "gp", "sobol"])
def test_every_searcher_draws_a_familys_own_schedule(live_api: LiveAPI, algorithm: str) -> None:
    spec = _spec(
        f"own-{algorithm}",
        {"algorithm": algorithm, "num_trials": 8, "seed": 1},
        batch_size={"values": ["full", 64]},
        clip_norm={"low": 0.5, "high": 5.0, "log": True},
        schedule={
            "kind": {"values": ["constant", "cosine"]},
            "warmup_steps": {"low": 0, "high": 2},
        },
        overrides={"sgd": {"schedule": {"kind": {"values": ["step", "exponential"]}}}},
    )
    spec["workload"]["epochs"] = 2
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    for trial in live_api.trials(sweep["id"]):
        schedule, settings = trial["settings"]["schedule"], trial["settings"]
        own = ("step", "exponential") if trial["optimizer"] == "sgd" else ("constant", "cosine")
        assert schedule["kind"] in own
        assert 0 <= schedule["warmup_steps"] <= 2
        assert settings["batch_size"] in ("full", 64)
        assert 0.5 <= settings["clip_norm"] <= 5.0


@pytest.mark.parametrize(
    ("overrides", "loc", "message"),
    [
        ({"adam": {"schedule": {"kind": "linear"}}}, "overrides", "unknown schedule kind 'linear'"),
        ({"adam": {"schedule": 0.1}}, "overrides", "expected a schedule"),
        ({"adam": {"eps": {"kind": "cosine"}}}, "overrides", "a schedule goes under 'schedule'"),
        (
            {"sgd": {"schedule": {"warmup_steps": 3}}},
            "overrides.sgd.schedule.warmup_steps",
            "a warm-up of 3 epochs is longer than the run of 1",
        ),
    ],
)
def test_a_bad_schedule_override_is_a_422_naming_it(
    live_api: LiveAPI, overrides: dict[str, Any], loc: str, message: str
) -> None:
    spec = _spec("bad", {"algorithm": "grid"}, schedule={"kind": "cosine"}, overrides=overrides)
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][: 2 + len(loc.split("."))] == ["body", "space", *loc.split(".")]
    assert message in error["msg"]
