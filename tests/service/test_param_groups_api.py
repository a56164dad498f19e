"""Parameter groups through the API: a sweep with no-decay and lr-multiplier groups trains,
and a rule that selects nothing, or a key a group does not have, is a 422 naming it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.conftest import LiveAPI

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""The searches below on SQLite only, to keep `make test` short (the first test here trains
groups on both databases)."""

CHAR_LM = {
    "name": "char-lm",
    "epochs": 1,
    "train_sequences": 64,
    "val_sequences": 16,
    "d_model": 32,
    "context": 32,
}


def _spec(**space: Any) -> dict[str, Any]:
    return {
        "name": "groups",
        "workload": CHAR_LM,
        "space": {
            "optimizers": ["adamw", "lion", "adafactor", "muon"],
            "lr": {"values": [1e-3]},
            **space,
        },
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
    }


def test_a_sweep_with_no_decay_and_an_lr_multiplier_group_trains(live_api: LiveAPI) -> None:
    groups = [{"select": [{"module": "Embedding"}], "lr_multiplier": 0.5}]
    sweep = live_api.wait(live_api.submit(_spec(param_groups=groups, no_decay=True))["id"])
    assert sweep["status"] == "completed", sweep
    assert sweep["spec"]["space"]["no_decay"] is True
    assert sweep["spec"]["space"]["param_groups"][0]["lr_multiplier"] == 0.5
    trials = live_api.trials(sweep["id"])
    assert {t["optimizer"] for t in trials} == {"adamw", "lion", "adafactor", "muon"}
    assert all(t["status"] == "completed" for t in trials)


@SQLITE
def test_prodigy_trains_with_no_decay_and_refuses_a_group_lr_multiplier(live_api: LiveAPI) -> None:
    """Prodigy beside AdamW: the shared lr is AdamW's, Prodigy keeps its lr 1 and searches
    d_coef, and the report says what tuning lr gained over the learning-rate-free family."""
    spec = _spec(no_decay=True)
    spec["space"].update(optimizers=["adamw", "prodigy"], lr={"values": [1e-3, 3e-3]})
    spec["space"]["overrides"] = {"prodigy": {"d_coef": {"values": [0.5, 1.0]}}}
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"])
    assert all(t["status"] == "completed" for t in trials)
    prodigy = [t["hyperparameters"] for t in trials if t["optimizer"] == "prodigy"]
    assert sorted((h["lr"], h["d_coef"]) for h in prodigy) == [(1.0, 0.5), (1.0, 1.0)]
    adamw = sorted(t["hyperparameters"]["lr"] for t in trials if t["optimizer"] == "adamw")
    assert adamw == [1e-3, 3e-3]
    report = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()
    families = {f["optimizer"]: f for f in report["families"]}
    gain = families["prodigy"]["best_objective"] - families["adamw"]["best_objective"]
    assert families["prodigy"]["lr_tuning_gain"] == pytest.approx(gain)  # val_loss: lower wins
    assert families["adamw"]["lr_tuning_gain"] is None
    summary = families["prodigy"]["summary"]
    assert summary.startswith("prodigy (learning-rate free, lr 1): best val_loss")
    assert f"tuning lr gained {gain:+.3g} val_loss" in summary
    spec["space"]["param_groups"] = [{"select": ["embedding"], "lr_multiplier": 0.1}]
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "param_groups", "0", "lr_multiplier"]
    assert "prodigy takes one lr for every parameter" in error["msg"]
    assert "0.1" in error["msg"]


@SQLITE
def test_group_values_are_searched_like_hyperparameters(live_api: LiveAPI) -> None:
    """A grid over a group's weight decay trains each value, with the trial's value in its
    settings and its training; a random search draws a group's lr multiplier in its range."""
    groups = [{"select": ["norm", "embedding"], "weight_decay": {"values": [0.0, 2.0]}}]
    spec = _spec(param_groups=groups)
    spec["space"].update(optimizers=["adamw"], hyperparameters={"weight_decay": 0.0})
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed", sweep
    trials = live_api.trials(sweep["id"])
    assert sorted(t["settings"]["param_groups.0.weight_decay"] for t in trials) == [0.0, 2.0]
    losses = {t["settings"]["param_groups.0.weight_decay"]: t["objective"] for t in trials}
    assert losses[0.0] != losses[2.0]  # the decay reached the norms and embeddings
    report = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()
    (family,) = report["families"]
    assert "group 0 weight decay" in family["summary"]

    drawn = _spec(param_groups=[{"select": ["matrix"], "lr_multiplier": {"low": 0.2, "high": 0.5}}])
    drawn["space"]["optimizers"] = ["adamw", "lion"]
    drawn["search"] = {"algorithm": "random", "num_trials": 4, "seed": 3}
    sweep = live_api.wait(live_api.submit(drawn)["id"])
    assert sweep["status"] == "completed", sweep
    values = [t["settings"]["param_groups.0.lr_multiplier"] for t in live_api.trials(sweep["id"])]
    assert len(set(values)) == 4
    assert all(0.2 <= v <= 0.5 for v in values)


def test_a_searched_group_value_out_of_range_is_a_422(live_api: LiveAPI) -> None:
    groups = [{"select": ["bias"], "weight_decay": {"low": -0.1, "high": 0.1}}]
    response = live_api.client.post("/sweeps", json=_spec(param_groups=groups))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"][:4] == ["body", "space", "param_groups", 0]
    assert "weight_decay: must be finite and >= 0, got -0.1" in error["msg"]


def test_muon_on_a_model_without_hidden_matrices_is_a_422(live_api: LiveAPI) -> None:
    spec = _spec()
    spec["workload"] = {"name": "logreg-digits", "epochs": 1}
    response = live_api.client.post("/sweeps", json=spec)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "optimizers"]
    assert "has no hidden matrix for Muon" in error["msg"]
    assert "weight" in error["msg"]  # it names the model's matrices


@pytest.mark.parametrize(
    ("space", "loc", "message"),
    [
        (
            {"param_groups": [{"select": [{"module": "Conv2d"}], "weight_decay": 0.0}]},
            ["body", "space", "param_groups", "0", "select"],
            "selects no parameter of 'char-lm'",
        ),
        (
            {"param_groups": [{"select": ["bias"], "weight_decay": 0.0, "betas": [0.9, 0.9]}]},
            ["body", "space", "param_groups", 0, "betas"],
            "unknown field 'betas' (valid: lr_multiplier, select, weight_decay)",
        ),
        (
            {"param_groups": [{"select": ["biases"], "weight_decay": 0.0}]},
            ["body", "space", "param_groups", 0, "select", 0],
            "'bias', 'norm', 'embedding', 'matrix' or 'vector'",
        ),
        (
            {"param_groups": [{"select": ["bias"]}]},
            ["body", "space", "param_groups", 0],
            "sets weight_decay, lr_multiplier or both",
        ),
    ],
)
def test_a_bad_group_is_a_422_naming_it(
    live_api: LiveAPI, space: dict[str, Any], loc: list[Any], message: str
) -> None:
    response = live_api.client.post("/sweeps", json=_spec(**space))
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and message in e["msg"] for e in errors), errors


def _schedule_free(**space: Any) -> dict[str, Any]:
    return {
        "name": "schedule-free",
        "workload": {"name": "mlp-digits", "epochs": 2},
        "space": {
            "optimizers": ["adamw", "schedulefree_adamw"],
            "lr": {"values": [3e-3]},
            "schedule": {"kind": "cosine"},
            **space,
        },
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_accuracy", "mode": "max"},
    }


def test_a_schedule_on_a_schedule_free_family_is_a_422(live_api: LiveAPI) -> None:
    response = live_api.client.post("/sweeps", json=_schedule_free())
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "space", "schedule"]
    assert "schedulefree_adamw replaces an lr schedule" in error["msg"]


def test_schedule_free_beside_a_cosine_adamw_trains(live_api: LiveAPI) -> None:
    constant = {"schedulefree_adamw": {"schedule": {"kind": "constant"}}}
    sweep = live_api.wait(live_api.submit(_schedule_free(overrides=constant))["id"])
    assert sweep["status"] == "completed", sweep
    trials = {t["optimizer"]: t for t in live_api.trials(sweep["id"])}
    assert trials["schedulefree_adamw"]["status"] == "completed"
    assert trials["schedulefree_adamw"]["objective"] > 0.5  # val_accuracy, evaluated at x
