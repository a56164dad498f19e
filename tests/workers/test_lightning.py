"""A user's LightningModule as a function workload, through the worker's own path (train_trial):
the trial's optimizer trains it, every epoch is reported, stopping stops the Trainer, a retry
resumes, clipping bounds each step, and what the module fails to log is named."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from pydantic import Field
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from optisweep.optimizers import create_optimizer
from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.integrations.lightning import lightning_workload
from optisweep.workers.specs import PackSpec
from optisweep.workers.train import train_trial
from optisweep.workers.workloads import WorkloadConfig
from tests.conftest import REPO_ROOT
from tests.workers.helpers import user_trial, without_time

EXAMPLE = REPO_ROOT / "examples" / "lightning"


class LineConfig(WorkloadConfig):
    """What the test module does: its dropout, and a metric it leaves unlogged."""

    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    unlogged: str = ""


BUILT: list[LineFit] = []
"""Every module the workloads below built, latest last: what the tests look into."""


class LineFit(pl.LightningModule):
    """Fits y = 2x + 1 with a small MLP; records what the Trainer gave it."""

    def __init__(self, config: LineConfig) -> None:
        super().__init__()
        self.unlogged = config.unlogged
        self.net = nn.Sequential(
            nn.Linear(1, 8), nn.Tanh(), nn.Dropout(config.dropout), nn.Linear(8, 1)
        )
        self.epochs_started = 0
        self.optimizer_seen: torch.optim.Optimizer | None = None
        self.parameter_device: torch.device | None = None
        self.start: list[Tensor] = []
        self.end: list[Tensor] = []
        BUILT.append(self)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        return nn.functional.mse_loss(self.net(inputs), targets)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        inputs, targets = batch
        logged = {
            "val_loss": nn.functional.mse_loss(self.net(inputs), targets),
            "lr": self.trainer.optimizers[0].param_groups[0]["lr"],
        }
        for name, value in logged.items():
            if name != self.unlogged:
                self.log(name, value)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        raise RuntimeError("the module's own configure_optimizers ran")

    def on_train_start(self) -> None:
        self.optimizer_seen = self.trainer.optimizers[0]
        self.parameter_device = next(self.parameters()).device
        self.start = [p.detach().clone() for p in self.parameters()]

    def on_train_epoch_start(self) -> None:
        self.epochs_started += 1

    def on_train_end(self) -> None:
        self.end = [p.detach().clone() for p in self.parameters()]

    def train_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return line_loaders()[0]

    def val_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        return line_loaders()[1]


class ManualLineFit(LineFit):
    """The same fit with manual optimization: its own backward and step."""

    def __init__(self, config: LineConfig) -> None:
        super().__init__(config)
        self.automatic_optimization = False

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        inputs, targets = batch
        optimizer = self.optimizers()
        assert isinstance(optimizer, pl.core.optimizer.LightningOptimizer)
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(self.net(inputs), targets)
        self.manual_backward(loss)
        optimizer.step()
        return loss


def line_loaders() -> tuple[DataLoader[tuple[Tensor, ...]], DataLoader[tuple[Tensor, ...]]]:
    """128 points of y = 2x + 1: shuffled batches of 32 to train on, all of them to validate."""
    inputs = torch.randn(128, 1, generator=torch.Generator().manual_seed(0))
    points = TensorDataset(inputs, 2 * inputs + 1)
    return DataLoader(points, batch_size=32, shuffle=True), DataLoader(points, batch_size=128)


line = lightning_workload(
    module=LineFit, data=lambda _: line_loaders(), metrics=("lr",), config=LineConfig
)
line_own_data = lightning_workload(module=LineFit, metrics=("lr",), config=LineConfig)
line_manual = lightning_workload(
    module=ManualLineFit, data=lambda _: line_loaders(), metrics=("lr",), config=LineConfig
)

LINE = {"entrypoint": f"{__name__}:line", "epochs": 4}


def _run(spec: PackSpec, **options: Any) -> dict[int, dict[str, float]]:
    """The metrics train_trial reported, by epoch."""
    curve: dict[int, dict[str, float]] = {}
    train_trial(spec, report=lambda e, m: curve.__setitem__(e, m), **options)
    return curve


def test_the_trials_optimizer_trains_the_module_its_own_is_never_called() -> None:
    schedule = {"kind": "step", "step_size": 1, "gamma": 0.5}
    spec = user_trial(LINE, optimizer="momentum", hyperparameters={"lr": 0.08}, schedule=schedule)
    curve = _run(spec)
    seen = BUILT[-1].optimizer_seen
    built = create_optimizer("momentum", [torch.zeros(1, requires_grad=True)], lr=0.08)
    assert type(seen) is type(built)
    assert seen is not None
    assert seen.defaults == built.defaults
    # the trial's lr schedule, one step an epoch
    assert [curve[e]["lr"] for e in (1, 2, 3, 4)] == pytest.approx([0.08, 0.04, 0.02, 0.01])
    assert curve[4]["val_loss"] < curve[1]["val_loss"]


@pytest.fixture
def example_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example's folder on the path, as Ray's working_dir puts it on a worker's; its
    ``model`` imported afresh and forgotten after (other projects have a model.py too)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    yield
    sys.modules.pop("model", None)


@pytest.mark.usefixtures("example_on_path")
def test_every_epoch_of_the_example_is_reported_and_it_learns() -> None:
    spec = user_trial({"entrypoint": "model:workload", "epochs": 3}, hyperparameters={"lr": 0.01})
    curve = _run(spec)
    assert sorted(curve) == [1, 2, 3]
    assert {frozenset(metrics) for metrics in curve.values()} == {
        frozenset({"train_loss", "val_loss", "val_accuracy", "time_seconds"})
    }
    assert curve[3]["val_loss"] < curve[1]["val_loss"]
    assert curve[3]["val_accuracy"] > 0.8


def test_a_trial_told_to_stop_stops_the_trainer() -> None:
    told: list[int] = []
    result = train_trial(
        user_trial({**LINE, "entrypoint": f"{__name__}:line_own_data"}),
        report=lambda e, m: told.append(e),
        should_stop=lambda: len(told) >= 2,
    )
    assert (result.status, result.epochs_run) == ("stopped", 2)
    assert told == [1, 2]
    assert BUILT[-1].epochs_started == 2  # of 4: the Trainer ran no more


def test_a_diverging_trial_stops_as_diverged() -> None:
    result = train_trial(user_trial(LINE, optimizer="sgd", hyperparameters={"lr": 1e3}))
    assert result.status == "diverged"
    assert result.epochs_run < 4


def test_a_metric_the_module_never_logs_is_an_error_naming_it() -> None:
    logged = r"logged no 'lr' in epoch 1 \(it logged: train_loss, val_loss\)"
    with pytest.raises(ValueError, match=logged):
        train_trial(user_trial({**LINE, "unlogged": "lr"}))


@pytest.mark.parametrize("workload", ["line", "line_manual"])
def test_clipping_bounds_every_step_of_the_trainer(workload: str) -> None:
    """Plain SGD moves each step by lr times the clipped gradient's norm: 4 steps an epoch,
    so 12 steps of at most 0.5 * 1e-3 each; unclipped it moves far more. Under automatic
    optimization (Lightning's closure inside the step) and manual (the module's own step)."""

    def moved() -> float:
        module = BUILT[-1]
        pairs = zip(module.start, module.end, strict=True)
        return torch.cat([(end - start).flatten() for start, end in pairs]).norm().item()

    sgd = {"optimizer": "sgd", "hyperparameters": {"lr": 0.5}}
    three_epochs = {**LINE, "entrypoint": f"{__name__}:{workload}", "epochs": 3}
    train_trial(user_trial(three_epochs, clip_norm=1e-3, **sgd))
    assert moved() <= 12 * 0.5 * 1e-3 * (1 + 1e-5)
    train_trial(user_trial(three_epochs, **sgd))
    assert moved() > 10 * 12 * 0.5 * 1e-3


def test_a_retried_trial_resumes_as_the_first_attempt_would_have_gone_on() -> None:
    """Adam's state, the module's weights and each epoch's shuffle and dropout masks: the
    epochs after the checkpoint equal those of the uninterrupted run."""
    spec = user_trial({**LINE, "dropout": 0.2})
    saved: dict[int, Checkpoint] = {}
    whole = _run(spec, checkpoint=lambda c: saved.__setitem__(c.epoch, c))
    resumed = _run(spec, resume=saved[2])
    assert sorted(resumed) == [3, 4]
    for epoch in (3, 4):
        assert without_time(resumed[epoch]) == pytest.approx(without_time(whole[epoch]), rel=1e-6)
    fresh = _run(user_trial({**LINE, "dropout": 0.2}, seed=2))
    assert fresh[4]["val_loss"] != pytest.approx(whole[4]["val_loss"], rel=1e-6)


def test_schedule_free_validates_at_its_average_and_resumes_from_it() -> None:
    spec = user_trial(LINE, optimizer="schedulefree_sgd", hyperparameters={"lr": 0.05})
    saved: dict[int, Checkpoint] = {}
    whole = _run(spec, checkpoint=lambda c: saved.__setitem__(c.epoch, c))
    module = BUILT[-1]
    inputs, targets = next(iter(line_loaders()[1]))

    def val_loss() -> float:
        with torch.no_grad():
            return float(nn.functional.mse_loss(module.net(inputs), targets))

    at_x = val_loss()  # the module ends at the average the last validation saw
    assert whole[4]["val_loss"] == pytest.approx(at_x, rel=1e-6)
    assert module.optimizer_seen is not None
    module.optimizer_seen.train()  # type: ignore[attr-defined]
    assert val_loss() != pytest.approx(at_x, rel=1e-3)  # y, what it trained, is elsewhere
    resumed = _run(spec, resume=saved[2])  # its checkpoint holds x: it trains on from y
    for epoch in (3, 4):
        assert without_time(resumed[epoch]) == pytest.approx(without_time(whole[epoch]), rel=1e-6)


def test_a_retried_trial_resumes_its_per_epoch_lr_schedule() -> None:
    spec = user_trial(LINE, schedule={"kind": "step", "step_size": 1, "gamma": 0.5})
    saved: dict[int, Checkpoint] = {}
    whole = _run(spec, checkpoint=lambda c: saved.__setitem__(c.epoch, c))
    resumed = _run(spec, resume=saved[2])
    assert [resumed[e]["lr"] for e in (3, 4)] == pytest.approx([whole[e]["lr"] for e in (3, 4)])


def test_without_lightning_the_error_says_what_to_install() -> None:
    blocked = (
        "import sys; sys.modules['lightning'] = None; "
        "import optisweep.workers.integrations.lightning"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocked], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "pip install 'optisweep[lightning]'" in result.stderr


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_trial_trains_on_the_gpu() -> None:
    result = train_trial(user_trial(LINE, device="cuda"))
    assert (result.status, result.device) == ("completed", "cuda")
    assert BUILT[-1].parameter_device == torch.device("cuda", 0)
