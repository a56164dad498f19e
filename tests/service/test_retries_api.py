"""Retries through the REST API: a failing trial retried, from its checkpoint or from
scratch, and failed once its retries are spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import LiveAPI


def _flaky_spec(tmp_path: Path, *, fail_times: int, max_failures: int) -> dict[str, Any]:
    return {
        "name": f"flaky-{fail_times}-{max_failures}",
        "workload": {
            "name": "flaky",
            "epochs": 3,
            "fail_times": fail_times,
            "attempts_dir": str(tmp_path),
        },
        "space": {"optimizers": ["sgd"], "lr": {"values": [1e-4]}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": {"max_failures": max_failures},
    }


@pytest.mark.usefixtures("flaky_plugin")
def test_a_failing_trial_is_retried_and_then_completes(live_api: LiveAPI, tmp_path: Path) -> None:
    sweep = live_api.wait(
        live_api.submit(_flaky_spec(tmp_path, fail_times=1, max_failures=2))["id"]
    )
    assert sweep["status"] == "completed"
    (trial,) = live_api.trials(sweep["id"])
    assert trial["status"] == "completed"
    assert trial["attempt"] == 2
    assert trial["error"] is None
    series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
    assert all(s["steps"] == [1, 2, 3] for s in series)
    history = live_api.client.get(f"/trials/{trial['id']}/events").json()
    assert [(e["status"], e["attempt"]) for e in history] == [
        ("running", 1),
        ("pending", 1),
        ("running", 2),
        ("completed", 2),
    ]
    assert history[1]["detail"].startswith("attempt 1 failed: RuntimeError: planned failure 1")
    assert history[2]["detail"].startswith("on node ")
    assert history[3]["detail"] == "after epoch 3"
    times = [e["at"] for e in history]
    assert times == sorted(times)


@pytest.mark.usefixtures("flaky_plugin")
def test_a_trial_failing_every_attempt_is_failed_with_its_error(
    live_api: LiveAPI, tmp_path: Path
) -> None:
    sweep = live_api.wait(
        live_api.submit(_flaky_spec(tmp_path, fail_times=5, max_failures=1))["id"]
    )
    assert sweep["status"] == "failed"
    assert "failed" in sweep["error"]
    (trial,) = live_api.trials(sweep["id"])
    assert trial["status"] == "failed"
    assert trial["attempt"] == 2
    summary, _, trace = trial["error"].partition("\n\n")
    assert summary == "RuntimeError: planned failure 2 of 5"
    assert trace.startswith("Traceback (most recent call last)")  # the worker's, as text
    history = live_api.client.get(f"/trials/{trial['id']}/events").json()
    assert [(e["status"], e["attempt"]) for e in history][-2:] == [("running", 2), ("failed", 2)]
    assert history[-1]["detail"] == trial["error"]
    builds = list((tmp_path / str(trial["seed"])).glob("attempt-*"))
    assert len(builds) == 2  # exactly 1 + max_failures builds
    assert live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()["entries"] == []


def _mid_epoch_spec(
    tmp_path: Path, *, lrs: list[float], fail_times: int, checkpoint_every: int = 1
) -> dict[str, Any]:
    """Trials of 4 epochs whose first ``fail_times`` attempts fail while evaluating epoch 3."""
    spec = _flaky_spec(tmp_path, fail_times=fail_times, max_failures=2)
    spec["name"] = f"mid-epoch-{len(lrs)}-{fail_times}-{checkpoint_every}"
    spec["workload"].update(epochs=4, fail_at_epoch=3)
    spec["space"]["lr"] = {"values": lrs}
    spec["resources"]["checkpoint_every"] = checkpoint_every
    return spec


def _evaluations(tmp_path: Path, trial: dict[str, Any], attempt: int) -> int:
    """How many epochs this attempt of the trial evaluated (the flaky workload counts them)."""
    return len(list((tmp_path / str(trial["seed"])).glob(f"evaluation-{attempt}-*")))


def _curves(live_api: LiveAPI, sweep_id: int) -> dict[float, dict[str, list[float]]]:
    curves = {}
    for trial in live_api.trials(sweep_id):
        series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
        assert all(s["steps"] == [1, 2, 3, 4] for s in series), series
        curves[trial["hyperparameters"]["lr"]] = {s["name"]: s["values"] for s in series}
    return curves


# Checkpoint resumption is controller and worker logic: SQLite is enough (keeps make test short).
@pytest.mark.usefixtures("flaky_plugin")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("lrs", [[1e-4], [1e-4, 2e-4, 3e-4, 5e-4]], ids=["alone", "packed"])
def test_a_retried_attempt_continues_from_the_checkpoint(
    live_api: LiveAPI, tmp_path: Path, lrs: list[float], checkpoint_dir: Path
) -> None:
    # With 4 trials the first attempts run as packs of 2 (2 CPUs); the retries alone or packed.
    failing = tmp_path / "failing"
    sweep = live_api.wait(live_api.submit(_mid_epoch_spec(failing, lrs=lrs, fail_times=1))["id"])
    assert sweep["status"] == "completed"
    trials = live_api.trials(sweep["id"])
    assert len(trials) == len(lrs)
    for trial in trials:
        assert (trial["status"], trial["attempt"], trial["error"]) == ("completed", 2, None)
        # Epochs 1 and 2 were checkpointed before the failure: the retry trained 3 and 4 only.
        assert _evaluations(failing, trial, 2) == 2
        assert trial["checkpoint_epoch"] == 4
        # Shown relative to the checkpoint folder: the API does not reveal the file system.
        assert not Path(trial["checkpoint_path"]).is_absolute()
        assert (checkpoint_dir / trial["checkpoint_path"]).is_file()
    # The same sweep without a failure records the same curves.
    clean = tmp_path / "clean"
    reference = live_api.wait(live_api.submit(_mid_epoch_spec(clean, lrs=lrs, fail_times=0))["id"])
    resumed, uninterrupted = _curves(live_api, sweep["id"]), _curves(live_api, reference["id"])
    assert resumed.keys() == uninterrupted.keys()
    for lr, series in resumed.items():
        for name, values in series.items():
            if name == "time_seconds":  # each run takes its own time
                continue
            assert values == pytest.approx(uninterrupted[lr][name], rel=1e-4), (lr, name)


@pytest.mark.usefixtures("flaky_plugin")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_checkpoints_a_retry_starts_from_scratch(live_api: LiveAPI, tmp_path: Path) -> None:
    spec = _mid_epoch_spec(tmp_path, lrs=[1e-4], fail_times=1, checkpoint_every=0)
    sweep = live_api.wait(live_api.submit(spec)["id"])
    (trial,) = live_api.trials(sweep["id"])
    assert (trial["status"], trial["attempt"]) == ("completed", 2)
    assert _evaluations(tmp_path, trial, 2) == 4
    assert trial["checkpoint_path"] is None
    _curves(live_api, sweep["id"])  # every epoch recorded once
