"""Comparisons of sweeps over different workloads (an MLP and a CNN on the digits, rosenbrock)
through the API, the client and the CLI, on a real server and both databases."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from typing import Any

import pytest

import optisweep
from optisweep.service.comparisons.profiles import TAU_MAX
from tests.conftest import clean_environment
from tests.e2e.conftest import OPTISWEEP
from tests.service.conftest import LiveAPI
from tests.service.sweep_specs import grid_spec


def _digits(workload: str, epochs: int, lrs: list[float]) -> dict[str, Any]:
    return {
        "name": f"compare-{workload}",
        "workload": {"name": workload, "epochs": epochs, "batch_size": 64},
        "space": {"optimizers": ["sgd", "adam"], "lr": {"values": lrs}},
        "search": {"algorithm": "grid"},
        "objective": {"metric": "val_accuracy", "mode": "max"},
    }


SPECS = [
    _digits("mlp-digits", 3, [1e-3, 1e-2, 1e-1]),
    _digits("cnn-digits", 2, [5e-2]),
    grid_spec(name="compare-rosenbrock"),
]


@pytest.fixture(scope="module")
def three(live_api: LiveAPI) -> list[int]:
    """Three finished sweeps over three workloads."""
    ids = [live_api.submit(spec)["id"] for spec in SPECS]
    for sweep_id in ids:
        assert live_api.wait(sweep_id)["status"] == "completed"
    return ids


def _compare(live_api: LiveAPI, ids: list[int], **params: Any) -> Any:
    response = live_api.client.get(
        "/comparisons", params={"sweeps": ",".join(map(str, ids)), **params}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _curves(live_api: LiveAPI, sweep_id: int, metric: str) -> dict[int, dict[int, float]]:
    """Each trial's values of ``metric`` by epoch, read from the sweep's metrics."""
    by_trial: dict[int, dict[int, float]] = defaultdict(dict)
    page = live_api.client.get(f"/sweeps/{sweep_id}/metrics", params={"name": metric}).json()
    for point in page["items"]:
        by_trial[point["trial_id"]][point["step"]] = float(point["value"])  # "NaN" too
    return by_trial


def test_each_sweep_is_measured_on_its_objective_to_a_fraction_target(
    live_api: LiveAPI, three: list[int]
) -> None:
    found = _compare(live_api, three, fraction=0.9)
    assert [s["sweep_id"] for s in found["sweeps"]] == three
    assert [s["workload"] for s in found["sweeps"]] == ["mlp-digits", "cnn-digits", "rosenbrock"]
    assert [s["metric"] for s in found["sweeps"]] == ["val_accuracy", "val_accuracy", "val_loss"]
    assert all(s["timed"] for s in found["sweeps"])
    assert found["measure"] == "seconds"
    for sweep in found["sweeps"]:
        assert "90% of the way" in sweep["target_rule"]
        rows = [r for r in found["results"] if r["sweep_id"] == sweep["sweep_id"]]
        trials = live_api.trials(sweep["sweep_id"])
        assert {r["optimizer"] for r in rows} == {t["optimizer"] for t in trials}
        values = _curves(live_api, sweep["sweep_id"], sweep["metric"])
        seconds = _curves(live_api, sweep["sweep_id"], "time_seconds")
        better = (lambda v, t: v >= t) if sweep["mode"] == "max" else (lambda v, t: v <= t)
        for row in rows:
            mine = [t["id"] for t in trials if t["optimizer"] == row["optimizer"]]
            hits = {
                trial_id: min(e for e, v in values[trial_id].items() if better(v, sweep["target"]))
                for trial_id in mine
                if any(better(v, sweep["target"]) for v in values[trial_id].values())
            }
            assert row["reached"] == len(hits)
            assert row["trials"] == len(mine)
            if hits:
                assert row["epochs_to_target"] == min(hits.values())
                fastest = min(seconds[t][e] for t, e in hits.items())
                assert row["seconds_to_target"] == pytest.approx(fastest)
            else:
                assert row["epochs_to_target"] is None
                assert row["ratio"] is None
        ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
        assert min(ratios) == pytest.approx(1.0)  # someone is the fastest on every sweep


def test_profiles_follow_from_the_ratios(live_api: LiveAPI, three: list[int]) -> None:
    found = _compare(live_api, three)
    taus = found["taus"]
    assert (taus[0], taus[-1]) == (1.0, TAU_MAX)
    by_family: dict[str, list[float | None]] = defaultdict(list)
    for sweep in found["sweeps"]:
        rows = {r["optimizer"]: r for r in found["results"] if r["sweep_id"] == sweep["sweep_id"]}
        for family in ("sgd", "adam", "momentum"):
            by_family[family].append(rows[family]["ratio"] if family in rows else None)
    areas = [p["area"] for p in found["profiles"]]
    assert areas == sorted(areas, reverse=True)
    for family_profile in found["profiles"]:
        ratios = by_family[family_profile["optimizer"]]
        expected = sum(max(0.0, TAU_MAX - r) for r in ratios if r is not None) / (3 * 3)
        assert family_profile["area"] == pytest.approx(expected)
        at_one = sum(1 for r in ratios if r is not None and r <= 1 + 1e-12) / 3
        assert family_profile["shares"][0] == pytest.approx(at_one)
    assert any("momentum did not run on sweep" in note for note in found["notes"])


def test_a_stated_target_applies_to_the_sweeps_whose_objective_it_names(
    live_api: LiveAPI, three: list[int]
) -> None:
    found = _compare(live_api, three, target=["val_accuracy>=0.5", "val_loss<=1.0"])
    assert [s["target"] for s in found["sweeps"]] == [0.5, 0.5, 1.0]
    assert found["sweeps"][0]["target_rule"] == "given: val_accuracy >= 0.5"
    epochs = _compare(live_api, three[:2], target="val_accuracy=0.5", measure="epochs")
    assert epochs["measure"] == "epochs"
    assert [s["target_rule"] for s in epochs["sweeps"]] == ["given: val_accuracy >= 0.5"] * 2
    for row in epochs["results"]:  # fastest by epochs: the ratios are of epochs
        fastest = min(
            r["epochs_to_target"]
            for r in epochs["results"]
            if r["sweep_id"] == row["sweep_id"] and r["epochs_to_target"] is not None
        )
        if row["epochs_to_target"] is not None:
            assert row["ratio"] == pytest.approx(row["epochs_to_target"] / fastest)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"sweeps": "1,x"}, "sweeps", "sweep ids separated by commas"),
        ({"sweeps": "1,1"}, "sweeps", "named twice"),
        ({"target": "val_accuracy>>1"}, "target", "not METRIC>=VALUE"),
        ({"target": "train_loss=0.1"}, "target", "direction is not known"),
        ({"measure": "hours"}, "measure", ""),
        ({"fraction": "2"}, "fraction", ""),
    ],
)
def test_bad_parameters_are_a_422_naming_them(
    live_api: LiveAPI, three: list[int], params: dict[str, str], field: str, words: str
) -> None:
    query = {"sweeps": str(three[0]), **params}
    response = live_api.client.get("/comparisons", params=query)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", field]
    assert words in detail["msg"]


def test_a_target_metric_a_sweep_does_not_report_is_a_422_naming_the_sweep(
    live_api: LiveAPI, three: list[int]
) -> None:
    rosenbrock = three[2]
    response = live_api.client.get(
        "/comparisons", params={"sweeps": f"{three[0]},{rosenbrock}", "target": "val_accuracy=0.9"}
    )
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert f"sweep {rosenbrock} (rosenbrock) reports none of val_accuracy" in message
    assert "distance_to_optimum" in message
    missing = live_api.client.get("/comparisons", params={"sweeps": f"{three[0]},999999"})
    assert missing.status_code == 404
    assert missing.json()["detail"] == "sweep 999999 not found"


def test_the_client_and_the_cli_show_the_comparison(live_api: LiveAPI, three: list[int]) -> None:
    token = live_api.client.headers["Authorization"].removeprefix("Bearer ")
    with optisweep.Client(live_api.url, token) as client:
        found = client.compare(three)
        table = found.to_pandas()
        assert len(table) == len(found.results)
        assert {"workload", "metric", "target", "optimizer", "ratio"} <= set(table.columns)
        curves = found.profiles_frame()
        assert curves.shape == (len(found.taus), len(found.profiles))
        with pytest.raises(optisweep.InvalidInputError) as refused:
            client.compare(three, target="val_accuracy>>1")
        assert refused.value.field == "target"
    env = clean_environment(OPTISWEEP_TOKEN=token, COLUMNS="200")
    shown = subprocess.run(
        [OPTISWEEP, "compare", *map(str, three), "--url", live_api.url],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "Performance profiles (by seconds to target)" in shown.stdout
    for sweep_id in three:
        assert f"sweep {sweep_id} compare-" in shown.stdout
    rosenbrock = str(three[2])
    bad = subprocess.run(
        [OPTISWEEP, "compare", rosenbrock, "--target", "val_accuracy=0.9", "--url", live_api.url],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "reports none of val_accuracy" in bad.stderr
