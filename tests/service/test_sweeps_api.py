"""Sweeps through the REST API (real server, real Ray, both databases): run to the end,
listed, paged, filtered, ranked, cancelled."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from optisweep.service.trials.models import Metric, Trial
from tests.conftest import wait_until
from tests.service.conftest import LiveAPI
from tests.service.sweep_specs import EPOCHS, grid_spec


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
        assert set(series) == {"train_loss", "val_loss", "distance_to_optimum", "time_seconds"}
        if trial["status"] == "completed":
            for one in series.values():
                assert one["steps"] == list(range(1, EPOCHS + 1))
            val_loss = series["val_loss"]["values"]
            assert trial["objective"] == val_loss[-1]
            assert trial["best_objective"] == min(val_loss)
            times = series["time_seconds"]["values"]
            assert times[0] > 0
            assert all(a < b for a, b in itertools.pairwise(times)), times
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


def test_time_seconds_is_an_objective_a_sweep_can_minimise(live_api: LiveAPI) -> None:
    spec = grid_spec(
        space={"optimizers": ["adam"], "lr": {"values": [1e-3, 1e-2]}},
        objective={"metric": "time_seconds", "mode": "min"},
    )
    sweep = live_api.wait(live_api.submit(spec)["id"])
    assert sweep["status"] == "completed"
    for trial in live_api.trials(sweep["id"]):
        series = live_api.client.get(f"/trials/{trial['id']}/metrics").json()["series"]
        (times,) = [s["values"] for s in series if s["name"] == "time_seconds"]
        assert trial["objective"] == times[-1] > 0
    board = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()
    assert (board["metric"], board["mode"]) == ("time_seconds", "min")


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
    spec = grid_spec(
        name="to-cancel",
        workload={"name": "quadratic", "epochs": 200, "steps_per_epoch": 200},
        space={"optimizers": ["sgd", "adam"], "lr": {"values": [1e-4, 2e-4, 3e-4, 4e-4]}},
        resources={"pack": False},  # two trials train, six wait: both kinds of end
    )
    sweep = live_api.submit(spec)
    wait_until(
        lambda: live_api.client.get(f"/sweeps/{sweep['id']}").json()["trial_counts"]["running"],
        timeout=120,
        what="a trial to start",
    )
    cancelled = live_api.client.post(f"/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    def closed() -> bool:
        counts = live_api.client.get(f"/sweeps/{sweep['id']}").json()["trial_counts"]
        return counts["running"] == counts["pending"] == 0

    wait_until(closed, timeout=60, what="every trial to end after the cancel")
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


def test_a_packed_trial_has_the_metrics_of_the_same_trial_run_alone(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    alone = live_api.wait(live_api.submit(grid_spec(resources={"pack": False}))["id"])
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
            if name == "time_seconds":  # a pack's members share its time; alone, one takes its own
                continue
            for a, b in zip(series["values"], curves[1][name]["values"], strict=True):
                a, b = float(a), float(b)
                assert (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-4 * abs(b)


def test_a_trial_is_named_by_its_number_in_its_sweep(
    live_api: LiveAPI, finished_grid: dict[str, Any]
) -> None:
    """GET /sweeps/{id}/trials/{number}: the trial the leaderboard, report and CLI call by
    that number (the same as /trials/{its id}); a number the sweep lacks is a 404."""
    sweep_id = finished_grid["id"]
    for trial in live_api.trials(sweep_id):
        by_number = live_api.client.get(f"/sweeps/{sweep_id}/trials/{trial['number']}")
        assert by_number.status_code == 200
        assert by_number.json() == live_api.client.get(f"/trials/{trial['id']}").json()
    missing = live_api.client.get(f"/sweeps/{sweep_id}/trials/999")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"sweep {sweep_id} has no trial 999"
    # beyond what an INTEGER column holds (PostgreSQL's is 32-bit): a 404, not a 500
    assert live_api.client.get(f"/sweeps/{sweep_id}/trials/386351505832").status_code == 404


def test_a_sweeps_spec_reads_back_as_yaml(live_api: LiveAPI, finished_grid: dict[str, Any]) -> None:
    """GET /sweeps/{id}/spec.yaml: the spec as stored, as YAML that loads to the same spec."""
    answer = live_api.client.get(f"/sweeps/{finished_grid['id']}/spec.yaml")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/yaml")
    assert yaml.safe_load(answer.text) == finished_grid["spec"]
