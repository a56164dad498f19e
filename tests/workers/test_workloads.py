"""The workload registry, the built-in workloads and config validation."""

from __future__ import annotations

import math
from collections.abc import Callable
from importlib.metadata import entry_points

import pytest
import torch

from optisweep.workers.specs import PackSpec
from optisweep.workers.train import train_trial
from optisweep.workers.workloads import (
    ENTRY_POINT_GROUP,
    WORKLOADS,
    Workload,
    WorkloadConfigError,
    get_workload,
    load_workloads,
    parse_workload_config,
    reported_metrics,
)
from optisweep.workers.workloads.digits import TRAIN_SIZE, VAL_SIZE

CPU = torch.device("cpu")

EXTRA_METRICS = {
    "char-lm": {"val_bits_per_byte", "val_accuracy"},
    "cnn-bn-digits": {"val_accuracy"},
    "cnn-digits": {"val_accuracy"},
    "logreg-digits": {"val_accuracy"},
    "mlp-digits": {"val_accuracy"},
    "quadratic": {"distance_to_optimum"},
    "rosenbrock": {"distance_to_optimum"},
}
FUNCTIONS = ("quadratic", "rosenbrock")
DIGITS = ("cnn-digits", "logreg-digits", "mlp-digits")


def test_every_workload_has_expected_metrics_listed() -> None:
    assert set(EXTRA_METRICS) == set(WORKLOADS)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_registry_entry_is_a_packable_workload_under_its_own_name(name: str) -> None:
    workload = WORKLOADS[name]
    assert isinstance(workload, Workload)
    assert workload.name == name
    assert workload.packable
    assert get_workload(name) is workload


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_two_epochs_of_adam_report_finite_metrics(name: str) -> None:
    reports: list[tuple[int, dict[str, float]]] = []
    spec = PackSpec.single(
        workload={"name": name, "epochs": 2},
        optimizer="adam",
        hyperparameters={"lr": 1e-2},
        seed=0,
        device="cpu",
    )
    result = train_trial(spec, report=lambda epoch, metrics: reports.append((epoch, metrics)))

    assert result.status == "completed"
    assert result.epochs_run == 2
    assert result.device == "cpu"
    assert [epoch for epoch, _ in reports] == [1, 2]
    for _, metrics in reports:
        assert set(metrics) == {"train_loss", "val_loss", "time_seconds"} | EXTRA_METRICS[name]
        assert set(metrics) == set(reported_metrics(WORKLOADS[name]))
        assert all(math.isfinite(value) for value in metrics.values()), metrics
    assert result.metrics == reports[-1][1]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_workloads_report_their_value_as_both_losses(name: str) -> None:
    spec = PackSpec.single(
        workload={"name": name, "epochs": 1}, optimizer="sgd", seed=3, device="cpu"
    )
    metrics = train_trial(spec).metrics
    assert metrics["train_loss"] == metrics["val_loss"]
    assert metrics["distance_to_optimum"] > 0.0


def test_mlp_digits_with_adam_learns_digits() -> None:
    spec = PackSpec.single(
        workload={"name": "mlp-digits", "epochs": 5},
        optimizer="adam",
        hyperparameters={"lr": 1e-2},
        seed=0,
        device="cpu",
    )
    result = train_trial(spec)
    assert result.metrics["val_accuracy"] > 0.9


@pytest.mark.parametrize("name", DIGITS)
def test_digits_split_is_fixed_and_disjoint(name: str) -> None:
    workload, config = parse_workload_config({"name": name})
    first = workload.build(config, seed=0, device=CPU)
    second = workload.build(config, seed=1, device=CPU)

    (train_x, train_y), (val_x, val_y) = first.train, first.val
    assert len(train_x) == len(train_y) == TRAIN_SIZE == 1_437
    assert len(val_x) == len(val_y) == VAL_SIZE == 360
    assert float(train_x.min()) >= 0.0
    assert float(train_x.max()) <= 1.0
    assert torch.equal(train_x, second.train[0])
    assert torch.equal(val_y, second.val[1])
    train_rows = {tuple(row.tolist()) for row in train_x.reshape(len(train_x), -1)}
    val_rows = {tuple(row.tolist()) for row in val_x.reshape(len(val_x), -1)}
    # digits has a handful of duplicate images, so a few shared rows are expected
    assert len(train_rows & val_rows) < 10


def test_rosenbrock_starts_near_its_seeded_point() -> None:
    workload, config = parse_workload_config({"name": "rosenbrock"})
    start = [p.item() for p in workload.build(config, seed=0, device=CPU).model.parameters()]
    other = [p.item() for p in workload.build(config, seed=1, device=CPU).model.parameters()]
    assert len(start) == 2
    assert math.hypot(start[0] + 1.5, start[1] - 2.0) < 0.5
    assert start != other


def test_quadratic_problem_is_independent_of_the_trial_seed() -> None:
    workload, config = parse_workload_config({"name": "quadratic", "condition_number": 100.0})
    first = workload.build(config, seed=0, device=CPU).model
    second = workload.build(config, seed=1, device=CPU).model
    assert torch.equal(first.get_buffer("curvature"), second.get_buffer("curvature"))
    assert float(first.get_buffer("curvature").max()) == pytest.approx(100.0)
    assert not torch.equal(first.get_parameter("x"), second.get_parameter("x"))
    at_minimum = workload.build(config, seed=0, device=CPU).model
    with torch.no_grad():
        at_minimum.get_parameter("x").zero_()
    assert at_minimum(torch.zeros(1, 0)).item() == 0.0


def test_unknown_workload_lists_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown workload 'nope' \(valid: .*mlp-digits"):
        get_workload("nope")
    spec = PackSpec.single(workload={"name": "nope"}, optimizer="adam", seed=0)
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        spec.workload_config()  # on the worker, where workloads' code is loaded
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        train_trial(spec)


@pytest.mark.parametrize(
    ("name", "changes", "field"),
    [
        ("mlp-digits", {"epochs": 0}, "epochs"),
        ("mlp-digits", {"epochs": 10_001}, "epochs"),
        ("mlp-digits", {"epochs": "many"}, "epochs"),
        ("cnn-digits", {"batch_size": 0}, "batch_size"),
        ("logreg-digits", {"batch_size": 65_537}, "batch_size"),
        ("rosenbrock", {"batch_size": 8}, "batch_size"),
        ("quadratic", {"condition_number": 0.5}, "condition_number"),
        ("mlp-digits", {"width": 64}, "width"),  # an unknown field
        ("mlp-digits", {"hidden": 0}, "hidden"),
    ],
)
def test_bad_config_raises_value_error_naming_the_field(
    name: str, changes: dict[str, object], field: str
) -> None:
    data = {"name": name, **changes}
    with pytest.raises(WorkloadConfigError, match=rf"^{name}: .*{field}") as raised:
        parse_workload_config(data)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)
    with pytest.raises(ValueError, match=field):
        PackSpec.single(workload=data, optimizer="adam", seed=0).workload_config()


def test_config_without_a_name_is_rejected() -> None:
    with pytest.raises(WorkloadConfigError, match="name") as raised:
        parse_workload_config({"epochs": 3})
    assert raised.value.field == "name"


def test_loader_returns_the_built_ins_when_no_plugin_is_installed() -> None:
    if entry_points(group=ENTRY_POINT_GROUP):
        pytest.skip("a workload plugin is installed in this environment")
    assert load_workloads() == WORKLOADS


def test_loader_adds_a_plugin_from_its_entry_point(
    install_plugin: Callable[[str, str], None],
) -> None:
    install_plugin("tiny-regression", "tests.workers.plugin_workload:TINY_REGRESSION")

    workloads = load_workloads()
    assert set(workloads) == set(WORKLOADS) | {"tiny-regression"}
    assert workloads["tiny-regression"].name == "tiny-regression"
    spec = PackSpec.single(
        workload={"name": "tiny-regression", "epochs": 20, "batch_size": 8},
        optimizer="adam",
        hyperparameters={"lr": 0.1},
        seed=0,
        device="cpu",
    )
    result = train_trial(spec)
    assert result.status == "completed"
    assert result.metrics["val_loss"] < 0.1


def test_plugin_that_is_not_a_workload_is_rejected(
    install_plugin: Callable[[str, str], None],
) -> None:
    install_plugin("broken", "tests.workers.plugin_workload:NOT_A_WORKLOAD")
    with pytest.raises(TypeError, match=r"'broken'.*must resolve to a Workload instance"):
        get_workload("broken")


def test_char_lm_learns_next_bytes_of_held_out_python_source() -> None:
    workload, config = parse_workload_config(
        {"name": "char-lm", "epochs": 3, "train_sequences": 256, "val_sequences": 32}
    )
    built = workload.build(config, seed=0, device=CPU)
    (inputs, targets), (val_inputs, _) = built.train, built.val
    assert inputs.shape == targets.shape == (256, 64)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are the next bytes
    assert b"def " in bytes(inputs.flatten().tolist())  # it is Python source
    train_text = {bytes(row.tolist()) for row in inputs}
    assert not any(bytes(row.tolist()) in train_text for row in val_inputs)  # held out
    spec = PackSpec.single(
        workload={"name": "char-lm", "epochs": 3, "train_sequences": 256, "val_sequences": 32},
        optimizer="adam",
        hyperparameters={"lr": 3e-3},
        seed=0,
        device="cpu",
    )
    curve: list[dict[str, float]] = []
    train_trial(spec, report=lambda epoch, metrics: curve.append(metrics))
    assert curve[-1]["val_bits_per_byte"] < curve[0]["val_bits_per_byte"] < 8.0
    assert curve[-1]["val_bits_per_byte"] == pytest.approx(curve[-1]["val_loss"] / math.log(2))


def test_char_lm_heads_must_divide_its_width() -> None:
    with pytest.raises(WorkloadConfigError, match="multiple of heads"):
        parse_workload_config({"name": "char-lm", "d_model": 30, "heads": 4})


def test_cnn_bn_digits_keeps_running_statistics() -> None:
    workload, config = parse_workload_config({"name": "cnn-bn-digits", "channels": 4})
    built = workload.build(config, seed=0, device=CPU)
    buffers = dict(built.model.named_buffers())
    assert buffers["1.running_mean"].shape == (4,)
    assert buffers["4.running_var"].shape == (8,)


def test_digits_read_from_scikit_learns_file_equal_load_digits() -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    from optisweep.workers.workloads.digits import load_digits_arrays

    pixels, labels = load_digits_arrays()
    digits = load_digits()
    assert pixels.shape == (1_797, 64)
    assert np.array_equal(pixels, digits.data)
    assert np.array_equal(labels, digits.target)


def test_numeric_fields_are_what_a_scale_study_may_vary() -> None:
    from optisweep.workers.workloads import get_workload, numeric_fields

    assert numeric_fields(get_workload("mlp-digits").config_model) == ("batch_size", "hidden")
    assert "d_model" in numeric_fields(get_workload("char-lm").config_model)
