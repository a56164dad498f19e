"""The scale study (``scale``): every configuration trained at each size of a workload field,
packs of one size each, and the report's rule log lr* = a + b log size per family with its
prediction; bad studies are a 422 naming the field."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

import pytest

from optisweep.service.errors import SpecError
from optisweep.service.sweeps.expansion import expand
from optisweep.service.sweeps.scale import SizeBest, check_scale, scale_study
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.workers.specs import WorkloadReport
from tests.service.conftest import LiveAPI


def _spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "scale",
        "workload": {"name": "mlp-digits", "epochs": 2},
        "space": {"optimizers": ["adam", "sgd"], "lr": {"values": [1e-3, 1e-2, 1e-1]}},
        "search": {"algorithm": "grid"},
        "scale": {"field": "hidden", "values": [8, 16, 32], "predict": 64},
    }
    spec.update(changes)
    return spec


def test_every_configuration_is_trained_at_each_size() -> None:
    suggestions = expand(SweepCreate.model_validate(_spec()), max_trials=1000)
    assert len(suggestions) == 2 * 3 * 3
    assert [s.settings["workload.hidden"] for s in suggestions[:3]] == [8, 16, 32]
    assert len({s.hyperparameters["lr"] for s in suggestions[:3]}) == 1  # one configuration


def test_the_rule_is_fitted_on_the_logs_and_predicts_with_an_interval() -> None:
    spec = SweepCreate.model_validate(_spec())
    exact = [SizeBest(w, 0.1 * w**-0.5, 0.05 * w**-0.5, 0.2 * w**-0.5) for w in (8, 16, 32)]
    centre = math.sqrt(0.05 * 0.2) * 64**-0.5  # lr*: the basin's geometric centre
    noisy = [
        SizeBest(8, 3e-2, 1e-2, 1e-1),
        SizeBest(16, 3e-2, 1e-2, 1e-1),
        SizeBest(32, 1e-2, None, None),
    ]
    study = scale_study(spec, {"adam": exact, "sgd": noisy})
    assert study is not None
    adam, sgd = study.families
    assert adam.slope == pytest.approx(-0.5)
    assert adam.predicted_lr == pytest.approx(centre)
    assert adam.interval_low == pytest.approx(adam.predicted_lr)  # a perfect line: no spread
    assert adam.range_low == pytest.approx(0.05 * 64**-0.5)
    assert adam.range_high == pytest.approx(0.2 * 64**-0.5)
    assert "adam: the good-lr basin's centre goes as hidden^-0.50" in adam.summary
    assert f"at hidden 64 use lr {centre:.3g}" in adam.summary
    assert sgd.slope is not None
    assert sgd.slope < 0
    assert sgd.interval_low is not None
    assert sgd.interval_high is not None
    assert sgd.interval_low < sgd.predicted_lr < sgd.interval_high  # type: ignore[operator]
    assert math.isfinite(sgd.slope_low or math.nan)
    assert study.summary == f"{adam.summary} {sgd.summary}"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"search": {"algorithm": "tpe", "num_trials": 4}},
            "search.algorithm",
            "use grid or random search",
        ),
        (
            {"scale": {"field": "name", "values": [1, 2, 3]}},
            "scale.field",
            "'name' is not a numeric field of mlp-digits's config (its numeric fields: "
            "batch_size, hidden)",
        ),
        ({"scale": {"field": "hidden", "values": [8, 16, 10**6]}}, "scale.values.2", "hidden"),
    ],
)
def test_a_study_that_cannot_run_names_its_field(
    changes: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(SpecError) as raised:
        check_scale(SweepCreate.model_validate(_spec(**changes)), None)
    assert raised.value.field == field
    assert message in str(raised.value)


def test_a_users_workload_is_checked_against_the_fields_its_worker_reported() -> None:
    spec = SweepCreate.model_validate(
        _spec(
            workload={"entrypoint": "model:workload", "epochs": 2},
            scale={"field": "channels", "values": [4, 8, 16]},
        )
    )
    check_scale(spec, None)  # nothing known of it before a worker looked
    check_scale(spec, WorkloadReport(name="digits16-cnn", numeric_fields=("channels",)))
    with pytest.raises(SpecError) as raised:
        check_scale(spec, WorkloadReport(name="digits16-cnn", numeric_fields=("dropout",)))
    assert raised.value.field == "scale.field"
    assert "'channels' is not a numeric field of digits16-cnn's config" in str(raised.value)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_scale_study_through_the_api(live_api: LiveAPI) -> None:
    answer = live_api.client.post(
        "/sweeps", json=_spec(scale={"field": "name", "values": [1, 2, 3]})
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "scale", "field"]

    sweep = live_api.wait(live_api.submit(_spec())["id"])
    assert (sweep["status"], sweep["num_trials"]) == ("completed", 18)
    trials = live_api.trials(sweep["id"])
    packs: dict[str, set[int]] = {}
    for trial in trials:
        if trial["pack_id"] is not None:
            packs.setdefault(trial["pack_id"], set()).add(trial["settings"]["workload.hidden"])
    assert packs
    assert all(len(widths) == 1 for widths in packs.values())  # a pack trains one model shape
    exported = live_api.client.get(f"/sweeps/{sweep['id']}/trials.csv").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [json.loads(r["settings"])["workload.hidden"] for r in rows[:3]] == [8, 16, 32]
    study = live_api.client.get(f"/sweeps/{sweep['id']}/report").json()["scale_study"]
    assert (study["field"], study["sizes"], study["predict"]) == ("hidden", [8, 16, 32], 64)
    for family in study["families"]:
        assert [p["size"] for p in family["points"]] == [8, 16, 32]
        for point in family["points"]:
            at = [
                t
                for t in trials
                if t["optimizer"] == family["optimizer"]
                and t["settings"]["workload.hidden"] == point["size"]
                and t["status"] == "completed"
            ]
            best = max(at, key=lambda t: t["objective"])
            assert point["best_lr"] == best["hyperparameters"]["lr"]
        assert family["predicted_lr"] > 0
        assert f"at hidden 64 use lr {family['predicted_lr']:.3g}" in family["summary"]


def test_a_basin_of_one_grid_lr_says_so_rather_than_a_range_of_one_value() -> None:
    spec = SweepCreate.model_validate(_spec())
    single = [SizeBest(w, 0.1, 0.1, 0.1) for w in (8, 16, 32)]
    study = scale_study(spec, {"sgd": single})
    assert study is not None
    (sgd,) = study.families
    assert sgd.predicted_lr == pytest.approx(0.1)
    assert "its basin was one lr of the grid at each size" in sgd.summary
    assert "good from about" not in sgd.summary
