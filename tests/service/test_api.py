"""The REST API over a real uvicorn server, a real local Ray, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from service.sweeps.models import Sweep
from service.trials.models import Metric, Trial
from tests.service.conftest import LiveAPI

EPOCHS = 4


def _grid_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "rosenbrock-grid",
        "workload": {"name": "rosenbrock", "epochs": EPOCHS, "steps_per_epoch": 10},
        "space": {
            "optimizers": ["sgd", "momentum", "adam"],
            "lr": {"values": [1e-4, 1e-3, 0.5]},
            "beta1": {"values": [0.9]},
        },
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_loss", "mode": "min"},
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="session")
def finished_grid(live_api: LiveAPI) -> dict[str, Any]:
    """A 9-trial grid sweep on rosenbrock, run to the end (one per database backend)."""
    response = live_api.client.post("/sweeps", json=_grid_spec())
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(f"/api/v1/sweeps/{response.json()['id']}")
    assert response.json()["num_trials"] == 9
    return live_api.wait(response.json()["id"])


def test_a_grid_sweep_runs_every_trial_to_the_end(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    assert finished_grid["status"] == "completed"
    trials = live_api.trials(finished_grid["id"])
    assert sorted(t["number"] for t in trials) == list(range(9))
    assert {t["status"] for t in trials} <= {"completed", "diverged"}
    assert finished_grid["trial_counts"]["completed"] + finished_grid["trial_counts"][
        "diverged"
    ] == len(trials)
    configurations = {(t["optimizer"], t["hyperparameters"]["lr"]) for t in trials}
    assert configurations == {
        (o, lr) for o in ("sgd", "momentum", "adam") for lr in (1e-4, 1e-3, 0.5)
    }
    by_config = {(t["optimizer"], t["hyperparameters"]["lr"]): t for t in trials}
    assert by_config[("sgd", 0.5)]["status"] == "diverged"
    assert by_config[("momentum", 1e-3)]["hyperparameters"]["momentum"] == 0.9
    assert by_config[("adam", 1e-3)]["hyperparameters"]["betas"] == [0.9, 0.999]
    assert all(t["pack_id"] for t in trials)  # packed by default: 2 CPUs, 2 packs
    assert len({t["pack_id"] for t in trials}) == 2
    for trial in trials:
        assert trial["attempt"] == 1
        assert trial["device"] == "cpu"
        assert trial["node_id"]
        assert trial["started_at"] is not None
        assert trial["finished_at"] >= trial["started_at"]


def test_metrics_are_every_epoch_and_match_the_objectives(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    for trial in live_api.trials(finished_grid["id"]):
        response = live_api.client.get(f"/trials/{trial['id']}/metrics")
        assert response.status_code == 200
        series = {s["name"]: s for s in response.json()["series"]}
        assert set(series) == {"train_loss", "val_loss", "distance_to_optimum"}
        if trial["status"] == "completed":
            for one in series.values():
                assert one["steps"] == list(range(1, EPOCHS + 1))
            val_loss = series["val_loss"]["values"]
            assert trial["objective"] == val_loss[-1]
            assert trial["best_objective"] == min(val_loss)
        else:  # diverged: stopped at the first epoch with a non-finite loss, stored as such
            values = [float(v) for v in series["train_loss"]["values"]]
            assert not math.isfinite(values[-1])
            assert all(math.isfinite(v) for v in values[:-1])
            assert isinstance(series["train_loss"]["values"][-1], str)  # "NaN" / "Infinity"


def test_leaderboard_is_the_best_completed_trial_per_family(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    trials = live_api.trials(finished_grid["id"])
    board = live_api.client.get(f"/sweeps/{finished_grid['id']}/leaderboard").json()
    assert (board["metric"], board["mode"]) == ("val_loss", "min")
    completed = [t for t in trials if t["status"] == "completed"]
    families = {t["optimizer"] for t in completed}
    assert [e["optimizer"] for e in board["entries"]] != []
    assert {e["optimizer"] for e in board["entries"]} == families
    for entry in board["entries"]:
        family = [t for t in completed if t["optimizer"] == entry["optimizer"]]
        assert entry["trial"]["objective"] == min(t["objective"] for t in family)
        assert entry["ranked_trials"] == len(family)
        assert entry["trial"]["status"] == "completed"
    objectives = [e["trial"]["objective"] for e in board["entries"]]
    assert objectives == sorted(objectives)
    assert [e["rank"] for e in board["entries"]] == list(range(1, len(objectives) + 1))


def _all_pages(live_api: LiveAPI, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = live_api.client.get(
            path, params={**params, "cursor": cursor} if cursor else params
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize(
    ("sort", "order"),
    [("objective", None), ("objective", "desc"), ("best_objective", "asc"), ("number", "desc")],
)
def test_trial_pages_cover_every_trial_once_in_order(
    live_api: LiveAPI, finished_grid: dict[str, Any], sort: str, order: str | None
) -> None:
    path = f"/sweeps/{finished_grid['id']}/trials"
    params = {"sort": sort, "limit": 2, **({"order": order} if order else {})}
    paged = _all_pages(live_api, path, **params)
    assert sorted(t["id"] for t in paged) == sorted(
        t["id"] for t in live_api.trials(finished_grid["id"])
    )
    keys = [t[sort] for t in paged]
    finite = [k for k in keys if isinstance(k, int | float) and math.isfinite(k)]
    assert keys[: len(finite)] == finite  # finite values first, pending / NaN ones last
    descending = order == "desc"  # objective defaults to best first: ascending for "min"
    assert finite == sorted(finite, reverse=descending)


def test_trials_filter_by_optimizer_and_status(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    adam = live_api.trials(finished_grid["id"], optimizer="adam")
    assert len(adam) == 3
    assert {t["optimizer"] for t in adam} == {"adam"}
    diverged = live_api.trials(finished_grid["id"], status="diverged")
    assert diverged
    assert {t["status"] for t in diverged} == {"diverged"}


def test_sweeps_list_pages_and_filters(live_api: LiveAPI, finished_grid: dict[str, Any]) -> None:
    everything = _all_pages(live_api, "/sweeps", limit=1)
    ids = [s["id"] for s in everything]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == len(ids)
    assert finished_grid["id"] in ids
    completed = _all_pages(live_api, "/sweeps", status="completed")
    assert finished_grid["id"] in [s["id"] for s in completed]
    assert {s["status"] for s in completed} == {"completed"}
    one = live_api.client.get(f"/sweeps/{finished_grid['id']}").json()
    assert sum(one["trial_counts"].values()) == one["num_trials"] == 9
    # each sweep carries its leaderboard's top: the dashboard's list needs no request per row
    board = live_api.client.get(f"/sweeps/{finished_grid['id']}/leaderboard").json()
    listed = next(s for s in everything if s["id"] == finished_grid["id"])
    assert (
        listed["best_objective"]
        == one["best_objective"]
        == board["entries"][0]["trial"]["objective"]
    )


def test_cancel_stops_a_running_sweep_and_a_second_cancel_conflicts(live_api: LiveAPI) -> None:
    spec = _grid_spec(
        name="to-cancel",
        workload={"name": "quadratic", "epochs": 200, "steps_per_epoch": 200},
        space={"optimizers": ["sgd", "adam"], "lr": {"values": [1e-4, 2e-4, 3e-4, 4e-4]}},
        resources={"pack": False},  # two trials train, six wait: both kinds of end
    )
    sweep = live_api.submit(spec)
    deadline = time.monotonic() + 120
    while live_api.client.get(f"/sweeps/{sweep['id']}").json()["trial_counts"]["running"] == 0:
        assert time.monotonic() < deadline, "no trial started"
        time.sleep(0.1)
    cancelled = live_api.client.post(f"/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    deadline = time.monotonic() + 60
    while True:
        counts = live_api.client.get(f"/sweeps/{sweep['id']}").json()["trial_counts"]
        if counts["running"] == counts["pending"] == 0:
            break
        assert time.monotonic() < deadline, f"trials still open after cancel: {counts}"
        time.sleep(0.2)
    trials = live_api.trials(sweep["id"])
    ended = [t for t in trials if t["status"] in ("stopped", "cancelled")]
    assert len(ended) >= len(trials) - 2  # at most the two in flight could have finished
    assert all(t["error"] == "sweep cancelled" for t in ended)
    # stopped trials had trained; cancelled ones never did
    assert all(t["epochs_run"] > 0 for t in ended if t["status"] == "stopped")
    assert all(t["epochs_run"] == 0 for t in ended if t["status"] == "cancelled")
    assert {t["status"] for t in ended} == {"stopped", "cancelled"}
    for trial in ended:
        history = live_api.client.get(f"/trials/{trial['id']}/events").json()
        assert (history[-1]["status"], history[-1]["detail"]) == (
            trial["status"],
            "sweep cancelled",
        )
    again = live_api.client.post(f"/sweeps/{sweep['id']}/cancel")
    assert again.status_code == 409
    assert "already cancelled" in again.json()["detail"]
    assert live_api.client.get(f"/sweeps/{sweep['id']}").json()["status"] == "cancelled"


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
    assert trial["error"] == "RuntimeError: planned failure 2 of 5"
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


BAD_SPECS: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    (
        "unknown optimizer",
        {"space": {"optimizers": ["adamz"], "lr": {"values": [0.1]}}},
        ("space", "optimizers"),
        "valid: adadelta, adagrad, adam",
    ),
    (
        "unknown workload",
        {"workload": {"name": "mnist", "epochs": 2}},
        ("workload", "name"),
        "mlp-digits",
    ),
    (
        "lr zero",
        {"space": {"optimizers": ["sgd"], "lr": {"values": [0.0]}}},
        ("space", "lr"),
        "lr must be finite and > 0",
    ),
    (
        "lr negative range",
        {"space": {"optimizers": ["sgd"], "lr": {"low": -1.0, "high": 0.1}}},
        ("space", "lr"),
        "> 0",
    ),
    (
        "lr infinite",
        {"space": {"optimizers": ["sgd"], "lr": {"low": 0.1, "high": "Infinity"}}},
        ("space", "lr"),
        "finite",
    ),
    (
        "beta1 is 1",
        {"space": {"optimizers": ["adam"], "lr": {"values": [0.1]}, "beta1": {"values": [1.0]}}},
        ("space", "beta1"),
        "[0, 1)",
    ),
    (
        "beta2 negative",
        {
            "space": {
                "optimizers": ["adam"],
                "lr": {"values": [0.1]},
                "beta2": {"low": -0.1, "high": 0.9},
            }
        },
        ("space", "beta2"),
        "[0, 1)",
    ),
    (
        "low above high",
        {"space": {"optimizers": ["sgd"], "lr": {"low": 0.1, "high": 0.01}}},
        ("space", "lr"),
        "low must be <= high",
    ),
    (
        "log with low 0",
        {"space": {"optimizers": ["sgd"], "lr": {"low": 0.0, "high": 0.1, "log": True}}},
        ("space", "lr"),
        "> 0",
    ),
    (
        "grid too large",
        {
            "space": {
                "optimizers": ["adam"],
                "lr": {"values": [i / 1000 + 0.001 for i in range(101)]},
                "beta1": {"values": [i / 1000 for i in range(100)]},
            }
        },
        ("space",),
        "more than the maximum of 10000",
    ),
    (
        "epochs zero",
        {"workload": {"name": "rosenbrock", "epochs": 0}},
        ("workload", "epochs"),
        "greater than or equal to 1",
    ),
    (
        "epochs too many",
        {"workload": {"name": "rosenbrock", "epochs": 10_001}},
        ("workload", "epochs"),
        "less than or equal to 10000",
    ),
    (
        "batch size zero",
        {"workload": {"name": "mlp-digits", "epochs": 2, "batch_size": 0}},
        ("workload", "batch_size"),
        "greater than or equal to 1",
    ),
    (
        "batch size too big for workload",
        {"workload": {"name": "rosenbrock", "epochs": 2, "batch_size": 64}},
        ("workload", "batch_size"),
        "rosenbrock",
    ),
    (
        "workload field unknown",
        {"workload": {"name": "mlp-digits", "epochs": 2, "hiden": 3}},
        ("workload", "hiden"),
        "unknown field",
    ),
    (
        "objective not reported",
        {"objective": {"metric": "val_accuracy", "mode": "max"}},
        ("objective", "metric"),
        "reports: train_loss",
    ),
    (
        "override of unknown field",
        {
            "space": {
                "optimizers": ["sgd"],
                "lr": {"values": [0.1]},
                "overrides": {"sgd": {"momentum": 0.9}},
            }
        },
        ("space", "overrides"),
        "unknown hyperparameter",
    ),
    (
        "random without count",
        {"search": {"algorithm": "random"}},
        ("search",),
        "num_trials is required",
    ),
]


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    live_api: LiveAPI, change: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    spec = _grid_spec(**change)
    with live_api.sessions() as session:
        before = (
            session.scalar(select(func.count()).select_from(Sweep)),
            session.scalar(select(func.count()).select_from(Trial)),
        )
    response = live_api.client.post(
        "/sweeps", content=json.dumps(spec), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    matching = [d for d in details if tuple(d["loc"][1 : 1 + len(loc)]) == loc]
    assert matching, details
    assert any(message in d["msg"] for d in matching), details
    assert "Traceback" not in response.text
    with live_api.sessions() as session:
        after = (
            session.scalar(select(func.count()).select_from(Sweep)),
            session.scalar(select(func.count()).select_from(Trial)),
        )
    assert after == before


@pytest.mark.parametrize(
    ("path", "params", "loc"),
    [
        ("/sweeps", {"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ("/sweeps", {"status": "done"}, ["query", "status"]),
        ("/sweeps", {"limit": 0}, ["query", "limit"]),
        ("/sweeps/{id}/trials", {"optimizer": "adamz"}, ["query", "optimizer"]),
        ("/sweeps/{id}/trials", {"sort": "lr"}, ["query", "sort"]),
        ("/sweeps/{id}/trials", {"cursor": "WzFd"}, ["query", "cursor"]),
    ],
)
def test_bad_query_parameters_are_422(
    live_api: LiveAPI,
    finished_grid: dict[str, Any],
    path: str,
    params: dict[str, Any],
    loc: list[str],
) -> None:
    response = live_api.client.get(path.format(id=finished_grid["id"]), params=params)
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["detail"]] == [loc]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/sweeps/987654"),
        ("POST", "/sweeps/987654/cancel"),
        ("GET", "/sweeps/987654/trials"),
        ("GET", "/sweeps/987654/leaderboard"),
        ("GET", "/trials/987654"),
        ("GET", "/trials/987654/metrics"),
    ],
)
def test_unknown_ids_are_404_with_a_json_body(live_api: LiveAPI, method: str, path: str) -> None:
    response = live_api.client.request(method, path)
    assert response.status_code == 404
    assert response.json()["detail"].endswith("987654 not found")


def test_health_readiness_and_docs(live_api: LiveAPI) -> None:
    assert live_api.client.get("/healthz").json() == {"status": "ok"}
    ready = live_api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["cpus"] == 2.0
    docs = live_api.client.get(f"{live_api.url}/docs")
    assert docs.status_code == 200
    openapi = live_api.client.get("/openapi.json").json()
    assert "/api/v1/sweeps/{sweep_id}/leaderboard" in openapi["paths"]


def test_metrics_rows_are_unique_per_trial_epoch_and_name(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    with live_api.sessions() as session:
        rows = session.execute(
            select(Metric.trial_id, Metric.name, Metric.step)
            .join(Trial, Trial.id == Metric.trial_id)
            .where(Trial.sweep_id == finished_grid["id"])
        ).all()
    assert len(rows) == len(set(rows)) > 0


@pytest.mark.parametrize(
    ("resources", "field"),
    [({"gpus_per_trial": 1}, "gpus_per_trial"), ({"cpus_per_trial": 64}, "cpus_per_trial")],
)
def test_resources_no_node_has_are_422(
    live_api: LiveAPI, resources: dict[str, float], field: str
) -> None:
    before = live_api.client.get("/sweeps").json()["items"]
    response = live_api.client.post("/sweeps", json=_grid_spec(resources=resources))
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "resources", field]
    assert "no node of the Ray cluster has more than" in detail["msg"]
    assert live_api.client.get("/sweeps").json()["items"] == before


def test_a_packed_trial_has_the_metrics_of_the_same_trial_run_alone(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    alone = live_api.wait(live_api.submit(_grid_spec(resources={"pack": False}))["id"])
    assert alone["status"] == "completed"
    packed_trials = {t["number"]: t for t in live_api.trials(finished_grid["id"])}
    for trial in live_api.trials(alone["id"]):
        assert trial["pack_id"] is None
        twin = packed_trials[trial["number"]]
        assert (twin["optimizer"], twin["hyperparameters"]) == (
            trial["optimizer"],
            trial["hyperparameters"],
        )
        assert twin["status"] == trial["status"]
        curves = [
            {
                s["name"]: s
                for s in live_api.client.get(f"/trials/{t['id']}/metrics").json()["series"]
            }
            for t in (trial, twin)
        ]
        for name, series in curves[0].items():
            assert series["steps"] == curves[1][name]["steps"]
            for a, b in zip(series["values"], curves[1][name]["values"], strict=True):
                a, b = float(a), float(b)
                assert (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-4 * abs(b)
