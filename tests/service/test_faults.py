"""Faults that must lose nothing and halt nothing: writes rejected for a while, a sweep whose
handling raises, trials that mostly fail, cancels, resources Ray would refuse."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from optisweep.service.config import Settings
from optisweep.service.sweeps.expansion import trial_seed
from tests.conftest import queue_unstartable_sweep, wait_until
from tests.service.conftest import LiveAPI, running_server

EPOCHS = 12


def _quadratic_spec(name: str, *, lrs: list[float], **resources: Any) -> dict[str, Any]:
    return {
        "name": name,
        "workload": {"name": "quadratic", "epochs": EPOCHS, "steps_per_epoch": 50},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"values": lrs}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": resources,
    }


@contextmanager
def metric_writes_rejected(live_api: LiveAPI) -> Iterator[None]:
    """A trigger in the real database that makes every insert into metrics fail, until exit."""
    with live_api.sessions.begin() as session:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            session.execute(
                text(
                    "CREATE FUNCTION optisweep_reject() RETURNS trigger AS $$ BEGIN "
                    "RAISE EXCEPTION 'injected fault'; END $$ LANGUAGE plpgsql"
                )
            )
            session.execute(
                text(
                    "CREATE TRIGGER optisweep_reject BEFORE INSERT ON metrics "
                    "FOR EACH STATEMENT EXECUTE FUNCTION optisweep_reject()"
                )
            )
            drops = ["DROP TRIGGER optisweep_reject ON metrics", "DROP FUNCTION optisweep_reject"]
        else:
            session.execute(
                text(
                    "CREATE TRIGGER optisweep_reject BEFORE INSERT ON metrics "
                    "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                )
            )
            drops = ["DROP TRIGGER optisweep_reject"]
    try:
        yield
    finally:
        with live_api.sessions.begin() as session:
            for drop in drops:
                session.execute(text(drop))


def _readiness(live_api: LiveAPI) -> httpx.Response:
    return live_api.client.get("/readyz")


def test_reports_held_while_the_database_rejects_writes_are_all_recorded(
    live_api: LiveAPI,
) -> None:
    spec = _quadratic_spec("writes-rejected", lrs=[1e-4, 3e-4])
    with metric_writes_rejected(live_api):
        sweep = live_api.submit(spec)
        failing = wait_until(
            lambda: (r := _readiness(live_api)).status_code == 503 and r.json(),
            timeout=60,
            what="/readyz to report the controller failing",
        )
        assert failing["controller"].startswith("failing: ")
        assert "injected fault" in failing["controller"]
        assert failing["database"] == "ok"  # reads work; it is the controller's writes that fail
    done = live_api.wait(sweep["id"])
    assert done["status"] == "completed", done
    assert _readiness(live_api).status_code == 200
    trials = live_api.trials(sweep["id"])
    assert len(trials) == 4
    for trial in trials:
        assert (trial["status"], trial["epochs_run"]) == ("completed", EPOCHS)
        series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
        assert series, "no metrics recorded"
        for one in series:
            assert one["steps"] == list(range(1, EPOCHS + 1)), one["name"]
        history = live_api.client.get(f"/trials/{trial['id']}/events").json()
        assert [e["status"] for e in history].count("completed") == 1


@pytest.mark.usefixtures("flaky_plugin")
def test_a_sweep_whose_handling_fails_fails_alone_while_others_complete(
    live_api: LiveAPI, database_url: str
) -> None:
    poison = queue_unstartable_sweep(database_url)
    healthy = live_api.submit(_quadratic_spec("healthy-beside-poison", lrs=[1e-4, 2e-4]))
    poisoned = live_api.wait(poison, timeout=120)
    assert poisoned["status"] == "failed"
    # retried (logged each time), then failed with the error, alone
    assert poisoned["error"].startswith("could not start: ValidationError:")
    assert sum(poisoned["trial_counts"].values()) == 0
    assert live_api.wait(healthy["id"])["status"] == "completed"


def _failing_spec(tmp_path: Path, *, trials: int) -> dict[str, Any]:
    return {
        "name": f"partly-failing-{trials}",
        "workload": {"name": "flaky", "epochs": 2, "fail_times": 9, "attempts_dir": str(tmp_path)},
        "space": {"optimizers": ["sgd"], "lr": {"values": [1e-4 * (i + 1) for i in range(trials)]}},
        "search": {"algorithm": "grid", "seed": 5},
        "objective": {"metric": "val_loss", "mode": "min"},
        "resources": {"max_failures": 0, "pack": False},
    }


def _let_succeed(tmp_path: Path, *, seed: int, number: int) -> None:
    """Trial ``number``'s next build succeeds: its failed builds have all happened already."""
    attempts = tmp_path / str(trial_seed(seed, number))
    attempts.mkdir(parents=True)
    for attempt in range(1, 10):
        (attempts / f"attempt-{attempt}").touch()


@pytest.mark.usefixtures("flaky_plugin")
@pytest.mark.parametrize(
    ("succeeding", "status", "summary"),
    [
        ([0, 1, 2], "completed", "1 of 4 trials failed: RuntimeError: planned failure 1 of 9"),
        ([3], "failed", "3 of 4 trials failed: RuntimeError: planned failure 1 of 9"),
    ],
)
def test_a_sweep_whose_trials_partly_failed_says_how_many_and_why(
    live_api: LiveAPI, tmp_path: Path, succeeding: list[int], status: str, summary: str
) -> None:
    for number in succeeding:
        _let_succeed(tmp_path, seed=5, number=number)
    done = live_api.wait(live_api.submit(_failing_spec(tmp_path, trials=4))["id"])
    assert (done["status"], done["error"]) == (status, summary)
    assert done["trial_counts"]["completed"] == len(succeeding)


@pytest.mark.parametrize(
    ("resources", "field", "message"),
    [
        ({"cpus_per_trial": 1e-300}, "cpus_per_trial", "greater than or equal to 0.0001"),
        ({"gpus_per_trial": 0.00001}, "gpus_per_trial", "Ray's resolution"),
        ({"gpus_per_trial": 1.5}, "gpus_per_trial", "whole number"),
    ],
)
def test_resources_ray_would_refuse_are_rejected_naming_the_field(
    live_api: LiveAPI, resources: dict[str, float], field: str, message: str
) -> None:
    response = live_api.client.post(
        "/sweeps", json=_quadratic_spec("bad-resources", lrs=[1e-4], **resources)
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "resources", field]
    assert message in error["msg"]


def test_readyz_fails_while_checkpoints_cannot_be_written(
    database_url: str, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the checkpoint folder should be")
    settings = Settings(database_url=database_url, checkpoint_dir=str(blocked))
    with running_server(settings, run_controller=False) as served:
        response = httpx.get(f"{served.url}/api/v1/readyz", headers=served.headers)
        assert response.status_code == 503
        assert response.json()["checkpoints"].startswith("not writable: ")
        assert str(tmp_path) not in response.text  # no server paths in responses
        blocked.unlink()
        response = httpx.get(f"{served.url}/api/v1/readyz", headers=served.headers)
        assert response.status_code == 200, response.text
        assert response.json()["checkpoints"] == "ok"
