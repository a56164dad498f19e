"""Users' own code on the workers: model workloads by entrypoint, and function workloads that
run their own loop with the trial's optimizer (family, hyperparameters, schedule, clipping)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import pytest

from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.inspection import inspect_workload
from optisweep.workers.specs import MemberSpec, PackSpec
from optisweep.workers.train import train_pack, train_trial
from optisweep.workers.workloads import (
    TrialContext,
    WorkloadConfig,
    WorkloadConfigError,
    function_workload,
    parse_workload_config,
)
from tests.workers.helpers import user_trial, without_time

USER_CODE = Path(__file__).parent / "user_code"


@pytest.fixture(autouse=True)
def _user_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's project on the path, as Ray's working_dir puts it on a worker's."""
    monkeypatch.syspath_prepend(str(USER_CODE))


def test_a_model_workload_by_entrypoint_trains_alone_and_packed() -> None:
    workload = {"entrypoint": "mylab.models:workload", "epochs": 3, "width": 8}
    curve: list[dict[str, float]] = []
    alone = train_trial(user_trial(workload, optimizer="sgd"), report=lambda e, m: curve.append(m))
    assert alone.status == "completed"
    assert set(curve[-1]) == {"train_loss", "val_loss", "val_rmse", "time_seconds"}
    assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    spec = PackSpec(
        workload=workload,
        members=[MemberSpec(optimizer="sgd", hyperparameters={"lr": 0.05}, seed=1)],
        data_seed=1,
        device="cpu",
    )
    (packed,) = train_pack(spec)
    assert without_time(packed.metrics) == pytest.approx(without_time(alone.metrics), rel=1e-4)


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("mylab.nope:workload", "does not import (ModuleNotFoundError: No module named"),
        ("mylab.models:missing", "has no attribute 'missing'"),
        ("mylab.models:not_a_workload", "int is neither a model workload"),
        ("mylab.models", "expected module.path:attribute"),
    ],
)
def test_an_entrypoint_that_is_not_a_workload_names_the_field(
    entrypoint: str, message: str
) -> None:
    with pytest.raises(WorkloadConfigError, match="entrypoint") as raised:
        parse_workload_config({"entrypoint": entrypoint, "epochs": 1})
    assert raised.value.field == "entrypoint"
    assert message in str(raised.value)


def test_name_and_entrypoint_together_are_refused() -> None:
    with pytest.raises(WorkloadConfigError, match="not both") as raised:
        parse_workload_config({"name": "quadratic", "entrypoint": "mylab.models:workload"})
    assert raised.value.field == "entrypoint"


def test_a_bad_field_of_the_users_own_config_names_it() -> None:
    with pytest.raises(WorkloadConfigError) as raised:
        parse_workload_config({"entrypoint": "mylab.models:workload", "width": 0})
    assert raised.value.field == "width"


LOOP = {"entrypoint": "mylab.loops:fit", "epochs": 4, "batch_size": 32}


def test_a_function_workload_runs_its_loop_with_the_trials_optimizer() -> None:
    curve: dict[int, dict[str, float]] = {}
    schedule = {"kind": "step", "step_size": 1, "gamma": 0.5}
    spec = user_trial(LOOP, optimizer="momentum", hyperparameters={"lr": 0.08}, schedule=schedule)
    result = train_trial(spec, report=lambda e, m: curve.__setitem__(e, m))
    assert (result.status, result.epochs_run) == ("completed", 4)
    assert sorted(curve) == [1, 2, 3, 4]
    # the trial's lr, halved after every epoch by its schedule
    assert [curve[e]["lr"] for e in (1, 2, 3, 4)] == pytest.approx([0.08, 0.04, 0.02, 0.01])
    assert curve[4]["val_loss"] < curve[1]["val_loss"]


def test_a_function_workloads_optimizer_has_the_trials_parameter_groups() -> None:
    curves: list[dict[int, dict[str, float]]] = [{}, {}]
    for curve, groups in zip(
        curves, ([], [{"select": ["bias"], "lr_multiplier": 0.1}]), strict=True
    ):
        spec = user_trial(LOOP, hyperparameters={"lr": 0.05}, param_groups=groups)
        result = train_trial(spec, report=lambda e, m, c=curve: c.__setitem__(e, m))  # type: ignore[misc]
        assert (result.status, result.epochs_run) == ("completed", 4)
    # the weight's lr (the first group) is the trial's; the bias at a tenth trains slower
    assert curves[0][4]["lr"] == curves[1][4]["lr"] == 0.05
    assert curves[1][4]["val_loss"] > curves[0][4]["val_loss"]


def test_a_function_workloads_per_step_warm_up_follows_its_steps_and_resumes() -> None:
    """128 rows in batches of 32: 4 steps an epoch; 6 warm-up steps, then 0.9 per step. A
    retry from the checkpoint after epoch 1 (in the warm-up) goes on with the same lrs."""
    schedule = {"kind": "exponential", "gamma": 0.9, "warmup": 6, "per": "step"}
    spec = user_trial(LOOP, optimizer="sgd", hyperparameters={"lr": 0.07}, schedule=schedule)
    curve: dict[int, dict[str, float]] = {}
    saved: dict[int, Checkpoint] = {}
    train_trial(
        spec,
        report=lambda e, m: curve.__setitem__(e, m),
        checkpoint=lambda c: saved.__setitem__(c.epoch, c),
    )
    expected = [0.07 * 5 / 7, 0.07 * 0.9**2, 0.07 * 0.9**6, 0.07 * 0.9**10]
    assert [curve[e]["lr"] for e in (1, 2, 3, 4)] == pytest.approx(expected, rel=1e-12)
    assert saved[1].step == 4
    resumed: dict[int, dict[str, float]] = {}
    train_trial(spec, resume=saved[1], report=lambda e, m: resumed.__setitem__(e, m))
    assert [resumed[e]["lr"] for e in (2, 3, 4)] == pytest.approx(expected[1:], rel=1e-12)
    unknown = user_trial(LOOP, schedule={"kind": "cosine", "per": "step"})
    with pytest.raises(ValueError, match="needs the run's length in steps"):
        train_trial(unknown)


def test_a_function_workload_is_stopped_when_told_and_diverges_on_nan() -> None:
    stopped = train_trial(user_trial(LOOP), should_stop=lambda: True)
    assert (stopped.status, stopped.epochs_run) == ("stopped", 0)
    told: list[int] = []
    result = train_trial(
        user_trial(LOOP), report=lambda e, m: told.append(e), should_stop=lambda: len(told) >= 2
    )
    assert (result.status, result.epochs_run) == ("stopped", 2)
    nan = train_trial(user_trial({**LOOP, "nan_at_epoch": 2}))
    assert (nan.status, nan.epochs_run) == ("diverged", 2)
    assert math.isnan(nan.metrics["val_loss"])


def test_an_exception_in_the_users_loop_fails_the_attempt() -> None:
    with pytest.raises(RuntimeError, match="the user's loop broke at epoch 2"):
        train_trial(user_trial({**LOOP, "fail_at_epoch": 2}))


def test_a_retried_function_workload_resumes_from_its_checkpoint() -> None:
    whole: dict[int, dict[str, float]] = {}
    train_trial(user_trial(LOOP), report=lambda e, m: whole.__setitem__(e, m))
    saved: dict[int, Checkpoint] = {}
    train_trial(user_trial(LOOP), checkpoint=lambda c: saved.__setitem__(c.epoch, c))
    assert saved[2].model_state is not None
    assert {e: without_time(m) for e, m in saved[2].history.items()} == {
        e: without_time(whole[e]) for e in (1, 2)
    }
    resumed: dict[int, dict[str, float]] = {}
    result = train_trial(
        user_trial(LOOP), resume=saved[2], report=lambda e, m: resumed.__setitem__(e, m)
    )
    assert result.status == "completed"
    assert sorted(resumed) == [3, 4]  # epochs after the checkpoint's
    for epoch in (3, 4):
        assert without_time(resumed[epoch]) == pytest.approx(without_time(whole[epoch]), rel=1e-6)


def test_a_function_workload_reports_its_time_and_a_retry_goes_on_from_the_checkpoints() -> None:
    curve: dict[int, dict[str, float]] = {}
    saved: dict[int, Checkpoint] = {}
    train_trial(
        user_trial(LOOP),
        report=lambda e, m: curve.__setitem__(e, m),
        checkpoint=lambda c: saved.__setitem__(c.epoch, c),
    )
    times = [curve[epoch]["time_seconds"] for epoch in (1, 2, 3, 4)]
    assert 0 < times[0] < times[1] < times[2] < times[3]
    earlier = 1_000.0  # what the attempts before this one trained, in seconds
    ckpt = dataclasses.replace(saved[2], metrics={**saved[2].metrics, "time_seconds": earlier})
    resumed: dict[int, dict[str, float]] = {}
    train_trial(user_trial(LOOP), resume=ckpt, report=lambda e, m: resumed.__setitem__(e, m))
    assert earlier < resumed[3]["time_seconds"] < resumed[4]["time_seconds"] < earlier + 60


class ClockConfig(WorkloadConfig):
    """Whether the function reports a time_seconds of its own."""

    own_time: bool = False


@function_workload(config=ClockConfig)
def slow_start(trial: TrialContext) -> None:
    """Takes 0.3 s to set up, then epochs that do nothing."""
    assert isinstance(trial.config, ClockConfig)
    time.sleep(0.3)
    for epoch in trial.epochs():
        own = {"time_seconds": 10.0 * epoch} if trial.config.own_time else {}
        if trial.report(epoch, train_loss=1.0, val_loss=1.0, **own):
            return


def test_a_function_workloads_time_is_its_epochs_and_a_time_it_reports_is_kept() -> None:
    workload = {"entrypoint": f"{__name__}:slow_start", "epochs": 3}
    began = time.perf_counter()
    result = train_trial(
        user_trial(workload),
        report=lambda e, m: time.sleep(0.2),
        checkpoint=lambda c: time.sleep(0.2),
    )
    # Neither the 0.3 s before the first epoch nor the 1.2 s in reports and checkpoints.
    waited = 0.3 + 6 * 0.2
    assert 0 < result.metrics["time_seconds"] <= time.perf_counter() - began - waited
    own = train_trial(user_trial({**workload, "own_time": True}))
    assert own.metrics["time_seconds"] == 30.0


def test_clipping_applies_to_the_users_steps() -> None:
    # A tiny global norm: the steps shrink to almost nothing, so the fit stays poor.
    clipped = train_trial(user_trial(LOOP, optimizer="sgd", clip_norm=1e-4))
    free = train_trial(user_trial(LOOP, optimizer="sgd"))
    assert clipped.metrics["val_loss"] > 2 * free.metrics["val_loss"]


def _curves_alone_and_packed(
    workload: dict[str, Any], seeds: tuple[int, ...] = (1, 2)
) -> tuple[list[list[dict[str, float]]], list[list[dict[str, float]]]]:
    members = [
        MemberSpec(optimizer=name, hyperparameters={"lr": 0.03}, seed=seed)
        for name, seed in zip(("adam", "momentum"), seeds, strict=True)
    ]
    alone = []
    for member in members:
        curve: list[dict[str, float]] = []
        spec = user_trial(
            workload,
            optimizer=member.optimizer,
            hyperparameters=member.hyperparameters,
            seed=member.seed,
            data_seed=7,
        )
        train_trial(spec, report=lambda e, m, c=curve: c.append(m))  # type: ignore[misc]
        alone.append(curve)
    packed: list[list[dict[str, float]]] = [[] for _ in members]

    def report(epoch: int, metrics: dict[int, dict[str, float]]) -> None:
        for k, values in metrics.items():
            packed[k].append(values)

    train_pack(
        PackSpec(workload=workload, members=members, data_seed=7, device="cpu"), report=report
    )
    return alone, packed


def _worst(a: list[list[dict[str, float]]], b: list[list[dict[str, float]]]) -> float:
    return max(
        abs(x[name] - y[name]) / max(abs(y[name]), 1e-12)
        for curve_a, curve_b in zip(a, b, strict=True)
        for x, y in zip(curve_a, curve_b, strict=True)
        for name in without_time(y)
    )


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("form", ["dataset", "tuple", "dict"])
def test_float64_packed_trials_of_every_data_form_equal_them_alone(form: str) -> None:
    # A Dataset with augmentation (seeded per epoch, the same for every member), inputs as a
    # tuple (positional) or a dict (keyword) of tensors.
    alone, packed = _curves_alone_and_packed(
        {"entrypoint": "mylab.data:pipelines", "epochs": 3, "batch_size": 16, "form": form}
    )
    assert len(alone[0]) == 3
    assert _worst(packed, alone) <= 1e-9


def test_float32_dataset_pack_equals_alone_and_dropout_masks_differ_per_member() -> None:
    workload = {"entrypoint": "mylab.data:pipelines", "epochs": 2, "batch_size": 16}
    alone, packed = _curves_alone_and_packed(workload)
    assert _worst(packed, alone) <= 1e-4
    # Two members alike in everything (seed, optimizer) but Dropout: their masks differ.
    same = MemberSpec(optimizer="adam", hyperparameters={"lr": 0.03}, seed=1)
    spec = PackSpec(
        workload={**workload, "dropout": 0.5}, members=[same, same], data_seed=7, device="cpu"
    )
    first, second = train_pack(spec)
    assert first.metrics["train_loss"] != second.metrics["train_loss"]
    without = PackSpec(workload=workload, members=[same, same], data_seed=7, device="cpu")
    first, second = train_pack(without)
    assert without_time(first.metrics) == without_time(second.metrics)


def test_inspection_finds_what_packs_and_why_not() -> None:
    model = inspect_workload({"entrypoint": "mylab.data:pipelines", "epochs": 1}, ["adam"])
    assert (model.kind, model.error) == ("model", None)
    assert model.probe is not None
    assert model.probe.packable
    assert model.probe.member_bytes > 0
    assert model.params
    assert all(info.name and info.module for info in model.params)
    stuck = inspect_workload({"entrypoint": "mylab.data:unpackable", "epochs": 1}, ["adam"])
    assert stuck.error is None  # it fails stacked only: its trials run one per task
    assert stuck.probe is not None
    assert not stuck.probe.packable
    assert "a stacked step failed" in (stuck.probe.reason or "")
    assert ".item()" in (stuck.probe.reason or "")
    loop = inspect_workload({"entrypoint": "mylab.loops:fit", "epochs": 1}, ["adam"])
    assert (loop.kind, loop.metrics) == (
        "function",
        ("train_loss", "val_loss", "lr", "time_seconds"),
    )
    assert loop.probe is not None
    assert not loop.probe.packable
    assert loop.params == ()  # a function workload's model is its own
    broken = inspect_workload({"entrypoint": "mylab.nope:x", "epochs": 1}, ["adam"])
    assert (broken.field, broken.probe) == ("entrypoint", None)
    assert "No module named 'mylab.nope'" in (broken.error or "")
    bad = inspect_workload({"entrypoint": "mylab.data:pipelines", "form": "csv"}, ["adam"])
    assert bad.field == "form"


def test_a_model_that_fails_alone_is_refused_naming_where_it_broke() -> None:
    """A shape bug fails one trial alone: the report is an error on the entrypoint with the
    last line and the user's frame, not a packing note (every trial would fail thrice)."""
    broken = inspect_workload({"entrypoint": "mylab.data:misshapen", "epochs": 1}, ["adam"])
    assert broken.field == "entrypoint"
    assert broken.error is not None
    assert broken.error.startswith("misshapen: one trial alone fails: RuntimeError: mat1 and mat2")
    assert "(data.py:" in broken.error  # the user's line, not torch's
    assert "in forward)" in broken.error


def test_inspection_says_when_and_why_a_model_packs_under_vmap() -> None:
    fused = inspect_workload({"entrypoint": "tests.workers.plugin_workload:TINY_PACKABLE"}, ["sgd"])
    assert fused.probe is not None
    assert (fused.probe.packable, fused.probe.not_fused) == (True, None)
    mixing = inspect_workload({"entrypoint": "tests.workers.plugin_workload:CENTRED"}, ["sgd"])
    assert mixing.probe is not None
    assert mixing.probe.packable
    assert mixing.probe.not_fused == "the fused pass differs from vmap's on this model"
