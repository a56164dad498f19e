"""Extend and rerun through the REST API: a finished sweep given more trials (random search
draws on from its seed, an adaptive one asks its searcher), its failed trials trained again
from their checkpoints, and the 404, 409 and 422 of requests that cannot be done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optisweep.service.search import make_searcher
from optisweep.service.sweeps.schemas import SweepCreate
from tests.service.conftest import LiveAPI


def _spec(algorithm: str, num_trials: int | None, **search: Any) -> dict[str, Any]:
    counted = {} if num_trials is None else {"num_trials": num_trials}
    return {
        "name": f"reopen-{algorithm}",
        "workload": {"name": "quadratic", "epochs": 2, "steps_per_epoch": 5},
        "space": {"optimizers": ["sgd", "momentum"], "lr": {"values": [1e-3, 1e-2]}}
        if algorithm == "grid"
        else {"optimizers": ["sgd", "momentum"], "lr": {"low": 1e-4, "high": 1e-2, "log": True}},
        "objective": {"metric": "val_loss", "mode": "min"},
        "search": {"algorithm": algorithm, "seed": 5, **counted, **search},
    }


def _steps_once(live_api: LiveAPI, trial: dict[str, Any], epochs: int) -> None:
    """Every metric of the trial has one value per epoch, none twice."""
    series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
    assert series, trial
    assert all(s["steps"] == list(range(1, epochs + 1)) for s in series), series


SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""SQLite only, to keep `make test` short, where the database adds nothing (the random
extension runs on PostgreSQL too: its row lock)."""


@pytest.mark.parametrize(
    ("algorithm", "database_url"),
    [("random", "sqlite"), ("random", "postgresql"), ("tpe", "sqlite")],
    indirect=["database_url"],
)
def test_a_finished_sweep_extended_runs_its_new_trials_and_keeps_the_old(
    live_api: LiveAPI, algorithm: str
) -> None:
    spec = _spec(algorithm, 3, repeats=2)
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert (sweep["status"], sweep["num_trials"]) == ("completed", 6)
    before = {t["number"]: t for t in live_api.trials(sweep["id"])}

    extended = live_api.client.post(f"/sweeps/{sweep['id']}/extend", json={"trials": 2})
    assert extended.status_code == 200, extended.text
    assert extended.json()["num_trials"] == 10  # two configurations, two repeats each
    assert extended.json()["status"] == "running"
    final = live_api.wait(sweep["id"])
    assert final["status"] == "completed", final
    trials = live_api.trials(sweep["id"])
    assert sorted(t["number"] for t in trials) == list(range(10))
    for trial in trials:
        assert trial["status"] == "completed"
        _steps_once(live_api, trial, 2)
        if trial["number"] in before:  # trained once, before: untouched
            assert trial["finished_at"] == before[trial["number"]]["finished_at"]
    by_number = {t["number"]: t for t in trials}
    for first in (6, 8):  # each new configuration's repeats share it, with their own seeds
        assert by_number[first]["hyperparameters"] == by_number[first + 1]["hyperparameters"]
        assert by_number[first]["seed"] != by_number[first + 1]["seed"]
    if algorithm == "random":  # the draws a 5-configuration sweep of the same seed makes
        longer = SweepCreate.model_validate(_spec("random", 5, repeats=2))
        draws = list(iter(make_searcher(longer, max_trials=100).suggest, None))
        assert [by_number[n]["hyperparameters"] for n in (6, 8)] == [
            d.hyperparameters for d in draws[3:]
        ]


@SQLITE
def test_requests_that_cannot_be_done_say_why(live_api: LiveAPI) -> None:
    client = live_api.client
    assert client.post("/sweeps/999999999/extend", json={"trials": 1}).status_code == 404
    grid = live_api.wait(live_api.submit(_spec("grid", None))["id"])
    answer = client.post(f"/sweeps/{grid['id']}/extend", json={"trials": 1})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "trials"]
    assert "searches by grid" in error["msg"]
    answer = client.post(f"/sweeps/{grid['id']}/extend", json={"trials": 0})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "trials"]
    answer = client.post(f"/sweeps/{grid['id']}/extend", json={"trials": 10**6})
    assert answer.status_code == 422
    assert "more than the maximum" in answer.text
    answer = client.post(f"/sweeps/{grid['id']}/rerun", json={"failed": False})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "failed"]
    rerun = client.post(f"/sweeps/{grid['id']}/rerun", json={"failed": True})
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["rerun"] == 0  # nothing failed: nothing goes again
    assert rerun.json()["sweep"]["status"] == "completed"

    slow = _spec("random", 40)
    slow["workload"].update(epochs=50, steps_per_epoch=200)
    running = live_api.submit(slow)["id"]
    answer = client.post(f"/sweeps/{running}/rerun", json={"failed": True})
    assert answer.status_code == 409
    assert "still" in answer.json()["detail"]
    assert client.post(f"/sweeps/{running}/cancel").status_code == 200
    answer = client.post(f"/sweeps/{running}/extend", json={"trials": 1})
    assert answer.status_code == 409
    assert "cancelled" in answer.json()["detail"]


def _flaky(tmp_path: Path) -> dict[str, Any]:
    """Two trials of 4 epochs whose first attempt fails evaluating epoch 3, no retries."""
    return {
        "name": "rerun-flaky",
        "workload": {
            "name": "flaky",
            "epochs": 4,
            "fail_times": 1,
            "fail_at_epoch": 3,
            "attempts_dir": str(tmp_path),
        },
        "space": {"optimizers": ["sgd"], "lr": {"values": [1e-4, 2e-4]}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": {"max_failures": 0, "checkpoint_every": 1},
    }


@pytest.mark.usefixtures("flaky_plugin")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_failed_trials_rerun_from_their_checkpoints_every_epoch_stored_once(
    live_api: LiveAPI, tmp_path: Path
) -> None:
    sweep = live_api.wait(live_api.submit(_flaky(tmp_path))["id"])
    assert sweep["status"] == "failed"
    assert {t["status"] for t in live_api.trials(sweep["id"])} == {"failed"}

    rerun = live_api.client.post(f"/sweeps/{sweep['id']}/rerun", json={"failed": True})
    assert rerun.status_code == 200, rerun.text
    assert rerun.json()["rerun"] == 2
    final = live_api.wait(sweep["id"])
    assert (final["status"], final["error"]) == ("completed", None)
    for trial in live_api.trials(sweep["id"]):
        assert (trial["status"], trial["attempt"], trial["error"]) == ("completed", 1, None)
        # epochs 1 and 2 were checkpointed before the failure: the rerun trained 3 and 4
        evaluations = list((tmp_path / str(trial["seed"])).glob("evaluation-2-*"))
        assert len(evaluations) == 2
        _steps_once(live_api, trial, 4)
        events = live_api.client.get(f"/trials/{trial['id']}/events").json()
        assert [e["status"] for e in events] == [
            "running",
            "failed",
            "pending",
            "running",
            "completed",
        ]
        assert events[2]["detail"] == "rerun (2 epochs checkpointed)"
