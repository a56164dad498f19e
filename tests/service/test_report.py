"""Answers users can trust: intervals and a test on the leaderboard with repeats, and the
optimizer report (the learning-rate basin, where a family diverged, a sentence per family)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from optisweep.service.sweeps.statistics import SINGLE_SEEDS, confidence_interval, p_value
from tests.service.conftest import LiveAPI


def test_the_interval_is_students_t() -> None:
    low, high = confidence_interval([1.0, 2.0, 3.0])
    # mean 2, standard error 1/sqrt(3), t(0.975, 2) = 4.302652729911275
    assert (low, high) == pytest.approx((2 - 2.4841377, 2 + 2.4841377), abs=1e-6)
    assert confidence_interval([5.0, 5.0]) == (5.0, 5.0)


def test_welchs_test_tells_a_tie_from_a_clear_difference() -> None:
    same = [0.91, 0.93, 0.92, 0.94]
    shuffled = [0.93, 0.92, 0.94, 0.91]
    assert p_value(same, shuffled) == pytest.approx(1.0)
    assert p_value(same, [0.71, 0.72, 0.70, 0.73]) < 1e-4  # type: ignore[operator]
    assert p_value([1.0], [2.0, 3.0]) is None  # one repeat: no test
    assert p_value([1.0, 1.0], [1.0, 1.0]) == 1.0
    assert p_value([1.0, 1.0], [2.0, 2.0]) == 0.0


def _quadratic(name: str, optimizers: list[str], **space: Any) -> dict[str, Any]:
    return {
        "name": name,
        "workload": {"name": "quadratic", "epochs": 2, "steps_per_epoch": 40},
        "space": {"optimizers": optimizers, "lr": {"values": [1e-3]}, **space},
        "search": {"algorithm": "grid", "repeats": 4, "seed": 3},
        "objective": {"metric": "distance_to_optimum", "mode": "min"},
    }


def test_families_equal_in_expectation_are_tied_and_a_clear_winner_is_not(
    live_api: LiveAPI,
) -> None:
    # Momentum with momentum 0 is SGD: the same rule, trials differing only in their seeds.
    tied = live_api.submit(
        _quadratic("tied", ["sgd", "momentum"], overrides={"momentum": {"momentum": 0.0}})
    )
    clear = live_api.submit(_quadratic("clear", ["sgd", "adam"]))
    for sweep in (tied, clear):
        assert live_api.wait(sweep["id"])["status"] == "completed"
    board = live_api.client.get(f"/sweeps/{tied['id']}/leaderboard").json()
    assert "Welch's t-test" in board["statistics"]
    leader, other = board["entries"]
    assert (leader["p_value"], leader["tied_with_leader"]) == (None, True)
    assert other["p_value"] >= 0.05
    assert other["tied_with_leader"] is True
    for entry in (leader, other):
        low, high = entry["objective_ci95"]
        assert low <= entry["objective_mean"] <= high
    board = live_api.client.get(f"/sweeps/{clear['id']}/leaderboard").json()
    leader, other = board["entries"]
    assert other["p_value"] < 0.05
    assert other["tied_with_leader"] is False


def test_the_report_finds_each_familys_basin_and_where_it_diverged(live_api: LiveAPI) -> None:
    lrs = [1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 1.0]
    sweep = live_api.submit(
        {
            "name": "report",
            "workload": {"name": "rosenbrock", "epochs": 2, "steps_per_epoch": 100},
            "space": {"optimizers": ["sgd", "adam"], "lr": {"values": lrs}},
            "search": {"algorithm": "grid"},
            "objective": {"metric": "val_loss", "mode": "min"},
        }
    )
    assert live_api.wait(sweep["id"])["status"] == "completed"
    trials = live_api.trials(sweep["id"])
    report = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()
    assert report["tolerance"] == 0.02
    assert [f["optimizer"] for f in report["families"]] != []
    for family in report["families"]:
        name = family["optimizer"]
        mine = [t for t in trials if t["optimizer"] == name]
        best = next(t for t in mine if t["number"] == family["best_trial"])
        assert family["basin_low"] <= best["hyperparameters"]["lr"] <= family["basin_high"]
        assert family["basin_decades"] == pytest.approx(
            math.log10(family["basin_high"] / family["basin_low"])
        )
        completed = [t["hyperparameters"]["lr"] for t in mine if t["status"] == "completed"]
        diverged = [t["hyperparameters"]["lr"] for t in mine if t["status"] == "diverged"]
        assert family["diverged"] == len(diverged)
        if diverged:
            assert family["lowest_diverged_lr"] == min(diverged)
            assert family["lowest_diverged_lr"] > max(completed)
            assert f"diverged at lr {min(diverged):.2g}" in family["summary"]
        assert family["summary"].startswith(f"{name}: ")
    assert any(f["diverged"] for f in report["families"])  # sgd at lr 1 on Rosenbrock
    single = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()
    assert single["statistics"] == SINGLE_SEEDS
    wider = live_api.client.get(f"/sweeps/{sweep['id']}/report", params={"tolerance": 0.5})
    for narrow, wide in zip(report["families"], wider.json()["families"], strict=True):
        assert wide["basin_configurations"] >= narrow["basin_configurations"]
    assert live_api.client.get(f"/sweeps/{sweep['id']}/report?tolerance=2").status_code == 422
    assert live_api.client.get("/sweeps/999999/report").status_code == 404


def test_the_same_spec_twice_gives_the_same_trials_and_metrics_bit_for_bit(
    live_api: LiveAPI,
) -> None:
    # Submitted together, so the second finds the cluster busy with the first: which trials
    # share a pack (and so every number) must follow from the spec, not from the load.
    spec = {
        "name": "twice",
        "workload": {"name": "mlp-digits", "epochs": 2, "batch_size": 128},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-3, "high": 0.1, "log": True}},
        "search": {"algorithm": "random", "num_trials": 6, "seed": 11},
        "objective": {"metric": "val_accuracy", "mode": "max"},
    }
    runs = [live_api.submit(spec) for _ in range(2)]
    stored = []
    for sweep in runs:
        assert live_api.wait(sweep["id"])["status"] == "completed"
        trials = sorted(live_api.trials(sweep["id"]), key=lambda t: t["number"])
        curves = {  # all but time_seconds: each run takes its own time
            t["number"]: [
                series
                for series in live_api.client.get(f"/trials/{t['id']}/metrics").json()["series"]
                if series["name"] != "time_seconds"
            ]
            for t in trials
        }
        configurations = [(t["optimizer"], t["hyperparameters"], t["seed"]) for t in trials]
        board = live_api.client.get(f"/sweeps/{sweep['id']}/leaderboard").json()
        ranking = [
            (e["optimizer"], e["trial"]["number"], e["trial"]["objective"])
            for e in board["entries"]
        ]
        stored.append((configurations, curves, ranking))
    assert stored[0] == stored[1]  # every stored value compared exactly, not approximately


def test_the_basin_slices_by_listed_settings_not_by_ranges() -> None:
    """Configurations share a basin when their batch size, clipping and schedule kind (listed
    values) match; a warm-up drawn from a range does not split them (one per slice otherwise)."""
    from optisweep.service.sweeps.report import _listed
    from optisweep.service.sweeps.schemas import Space

    space = Space.model_validate(
        {
            "optimizers": ["adam"],
            "lr": {"low": 1e-3, "high": 1e-1},
            "batch_size": {"values": ["full", 64]},
            "clip_norm": {"low": 0.1, "high": 10.0},
            "schedule": {
                "kind": {"values": ["constant", "cosine"]},
                "warmup_steps": {"low": 0, "high": 100},
                "min_factor": {"values": [0.0, 0.1]},
            },
        }
    )
    group = _listed(space, "adam")

    def settings(batch: object, clip: float, kind: str, warmup: int, **more: Any) -> dict:
        schedule = {"kind": kind, "warmup_steps": warmup, **more}
        return {"batch_size": batch, "clip_norm": clip, "schedule": schedule}

    same = group(settings(64, 0.5, "cosine", 3, min_factor=0.1))
    assert group(settings(64, 7.0, "cosine", 90, min_factor=0.1)) == same  # ranges: one slice
    assert group(settings("full", 0.5, "cosine", 3, min_factor=0.1)) != same
    assert group(settings(64, 0.5, "constant", 3)) != same
    assert group(settings(64, 0.5, "cosine", 3, min_factor=0.0)) != same  # listed: sliced
