"""The single-trial training loop: reproducibility, divergence, stopping and devices."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

from optisweep.workers.batches import epoch_generator
from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.runtime import resolve_device
from optisweep.workers.specs import PackSpec
from optisweep.workers.train import train_trial
from tests.workers.helpers import without_time


def _run(spec: PackSpec) -> list[tuple[int, dict[str, float]]]:
    reports: list[tuple[int, dict[str, float]]] = []
    train_trial(spec, report=lambda epoch, metrics: reports.append((epoch, metrics)))
    return reports


@pytest.mark.parametrize("name", ["mlp-digits", "quadratic"])
def test_same_seed_gives_identical_metrics_and_other_seeds_differ(name: str) -> None:
    def spec(seed: int) -> PackSpec:
        return PackSpec.single(
            workload={"name": name, "epochs": 2},
            optimizer="adam",
            hyperparameters={"lr": 1e-2},
            seed=seed,
            device="cpu",
        )

    def untimed(reports: list[tuple[int, dict[str, float]]]) -> list[tuple[int, dict[str, float]]]:
        return [(epoch, without_time(metrics)) for epoch, metrics in reports]

    first = untimed(_run(spec(7)))
    assert untimed(_run(spec(7))) == first
    assert untimed(_run(spec(8))) != first


@pytest.mark.usefixtures("float64")
def test_train_loss_is_the_epochs_batch_losses_averaged_over_examples() -> None:
    """With an lr too small to move the model, the batches' average is the training set's
    loss; the pack reports the same as the trial alone."""
    from optisweep.workers.evaluation import evaluate
    from optisweep.workers.specs import MemberSpec, PackSpec
    from optisweep.workers.train import train_pack
    from optisweep.workers.workloads import parse_workload_config

    workload = {"name": "mlp-digits", "epochs": 1, "batch_size": 100}
    member = {"optimizer": "sgd", "hyperparameters": {"lr": 1e-300}, "seed": 4}
    alone = train_trial(PackSpec.single(workload=workload, data_seed=0, **member)).metrics
    (packed,) = train_pack(PackSpec(workload=workload, members=[MemberSpec(**member)], data_seed=0))
    loaded, config = parse_workload_config(workload)
    torch.manual_seed(4)
    built = loaded.build(config, seed=4, device=torch.device("cpu"))
    full = evaluate(dataclasses.replace(built, train_loss="full"), torch.device("cpu"))
    assert alone["train_loss"] == pytest.approx(full["train_loss"], rel=1e-12)
    assert packed.metrics["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-12)
    assert alone["val_loss"] == pytest.approx(full["val_loss"], rel=1e-12)


def test_epoch_shuffles_depend_on_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        return torch.randperm(100, generator=epoch_generator(seed, epoch)).tolist()

    assert order(1, 1) == order(1, 1)
    assert order(1, 1) != order(1, 2)
    assert order(1, 2) != order(2, 1)


@pytest.mark.parametrize("name", ["quadratic", "rosenbrock"])
def test_huge_learning_rate_diverges_and_reports_the_epoch(name: str) -> None:
    spec = PackSpec.single(
        workload={"name": name, "epochs": 5},
        optimizer="sgd",
        hyperparameters={"lr": 1e6},
        seed=0,
        device="cpu",
    )
    reports = _run(spec)
    result = train_trial(spec)

    assert result.status == "diverged"
    assert result.epochs_run == 1
    assert [epoch for epoch, _ in reports] == [1]
    assert not math.isfinite(result.metrics["train_loss"])
    assert not math.isfinite(reports[0][1]["val_loss"])


def test_should_stop_ends_the_trial_before_the_next_epoch() -> None:
    reports: list[int] = []
    spec = PackSpec.single(workload={"name": "quadratic", "epochs": 10}, optimizer="sgd", seed=0)
    result = train_trial(
        spec,
        report=lambda epoch, metrics: reports.append(epoch),
        should_stop=lambda: len(reports) >= 3,
    )
    assert result.status == "stopped"
    assert result.epochs_run == 3
    assert reports == [1, 2, 3]


@pytest.mark.parametrize("name", ["mlp-digits", "quadratic"])
def test_every_epoch_reports_the_seconds_trained_so_far(name: str) -> None:
    spec = PackSpec.single(
        workload={"name": name, "epochs": 3}, optimizer="adam", seed=0, device="cpu"
    )
    saved: dict[int, Checkpoint] = {}
    reports = []
    result = train_trial(
        spec,
        report=lambda epoch, metrics: reports.append(metrics["time_seconds"]),
        checkpoint=lambda ckpt: saved.__setitem__(ckpt.epoch, ckpt),
    )
    assert len(reports) == 3
    assert 0 < reports[0] < reports[1] < reports[2]
    assert result.metrics["time_seconds"] == reports[-1]
    assert [saved[3].history[e]["time_seconds"] for e in (1, 2, 3)] == reports


def test_time_in_reports_and_checkpoints_is_not_training_time() -> None:
    spec = PackSpec.single(workload={"name": "quadratic", "epochs": 3}, optimizer="sgd", seed=0)
    began = time.perf_counter()
    result = train_trial(
        spec,
        report=lambda epoch, metrics: time.sleep(0.25),
        checkpoint=lambda ckpt: time.sleep(0.25),
    )
    waited = 6 * 0.25
    assert 0 < result.metrics["time_seconds"] <= time.perf_counter() - began - waited


def test_spec_validates_hyperparameters_and_its_workload_config_fills_defaults() -> None:
    spec = PackSpec.single(workload={"name": "mlp-digits"}, optimizer="adam", seed=0)
    # the workload's config is validated (defaults filled in) where its code runs: the worker
    assert spec.workload_config().model_dump() == {
        "name": "mlp-digits",
        "epochs": 10,
        "batch_size": 64,
        "hidden": 128,
    }
    assert spec.device == "auto"
    with pytest.raises(ValueError, match="momentum"):
        PackSpec.single(
            workload={"name": "mlp-digits"},
            optimizer="sgd",
            hyperparameters={"momentum": 0.9},
            seed=0,
        )
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        PackSpec.single(workload={"name": "mlp-digits"}, optimizer="nope", seed=0)
    with pytest.raises(ValueError, match="seed"):
        PackSpec.single(workload={"name": "mlp-digits"}, optimizer="adam", seed=-1)
    with pytest.raises(ValueError, match="device"):
        PackSpec.single(workload={"name": "mlp-digits"}, optimizer="adam", seed=0, device="warp")


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("warp")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    elif torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match="only 1 CUDA device"):
            resolve_device("cuda:1")
    else:
        assert resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["mlp-digits", "rosenbrock"])
def test_trains_on_cuda_like_on_cpu(name: str) -> None:
    def spec(device: str) -> PackSpec:
        return PackSpec.single(
            workload={"name": name, "epochs": 3},
            optimizer="adam",
            hyperparameters={"lr": 1e-2},
            seed=0,
            device=device,
        )

    on_cuda = train_trial(spec("auto"))
    on_cpu = train_trial(spec("cpu"))
    assert on_cuda.device.startswith("cuda")
    assert on_cuda.status == on_cpu.status == "completed"
    assert without_time(on_cuda.metrics) == pytest.approx(
        without_time(on_cpu.metrics), rel=1e-2, abs=1e-3
    )
