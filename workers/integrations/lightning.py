"""PyTorch Lightning: a user's unmodified LightningModule tuned as a function workload."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from optisweep.optimizers import set_mode
from optisweep.workers.workloads.base import ConfigT
from optisweep.workers.workloads.functional import FunctionWorkload, TrialContext, function_workload

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities.types import STEP_OUTPUT
except ImportError as missing:  # the optional extra: only workers running such a workload need it
    raise ImportError(
        "the Lightning integration needs lightning: pip install 'optisweep[lightning]'"
    ) from missing

Data = pl.LightningDataModule | tuple[DataLoader[Any], DataLoader[Any]]
"""What a data function gives: a LightningDataModule, or (train, validation) dataloaders."""


def lightning_workload(
    *,
    module: Callable[[ConfigT], pl.LightningModule],
    config: type[ConfigT],
    data: Callable[[ConfigT], Data] | None = None,
    metrics: tuple[str, ...] = (),
    name: str = "lightning",
) -> FunctionWorkload:
    """A function workload that trains ``module(config)`` on ``data(config)`` with a Trainer.

    ``data`` may be left out when the module has its own dataloader hooks. ``metrics`` are what
    the module logs with ``self.log`` beside ``val_loss`` (which it must log) and ``train_loss``
    (which, when not logged, is the mean loss its training steps returned). Every epoch runs
    validation; the metrics logged by then are reported, and a missing one is an error.

    On this instance of the module, ``configure_optimizers`` is replaced: the module's own is
    never called, and the trial's optimizer (family, hyperparameters, lr schedule, clipping)
    trains it. ``configure_callbacks`` is replaced too, by none: the sweep's scheduler stops
    trials and optisweep checkpoints them. The Trainer runs ``epochs`` epochs on the trial's
    device, without logger, progress bar, Lightning checkpoints or gradient clipping of its own.

    A retried trial resumes after its last checkpoint: the module's ``state_dict`` and the
    optimizer's state are restored, and each epoch's random numbers (shuffles, dropout) come
    from the trial's seed and the epoch, so the attempt goes on as the first would have, lr
    schedule included. Lightning's own counters (``current_epoch``, ``global_step``) start
    from 0 again.
    """
    metric_names = ("train_loss", "val_loss", *metrics)

    @function_workload(metrics=metrics, config=config, name=name)
    def train(trial: TrialContext) -> None:
        settings = cast(ConfigT, trial.config)
        lightning_module = module(settings)
        loaders = data(settings) if data is not None else None
        fit(trial, lightning_module, loaders, metric_names=metric_names, workload_name=name)

    return train


def fit(
    trial: TrialContext,
    lightning_module: pl.LightningModule,
    data: Data | None,
    *,
    metric_names: tuple[str, ...],
    workload_name: str,
) -> None:
    """Train ``lightning_module`` with the trial's optimizer for its remaining epochs."""
    inject(lightning_module, trial)
    trial.track(lightning_module)  # its state_dict travels in checkpoints; restored on a retry
    report = ReportEpochs(trial, metric_names=metric_names, workload_name=workload_name)
    with quiet():
        trainer = make_trainer(trial, report)
        if isinstance(data, pl.LightningDataModule):
            trainer.fit(lightning_module, datamodule=data)
        elif data is not None:
            train_loader, val_loader = data
            trainer.fit(lightning_module, train_loader, val_loader)
        else:
            trainer.fit(lightning_module)


def make_trainer(trial: TrialContext, report: pl.Callback) -> pl.Trainer:
    """A quiet Trainer on the trial's device for the epochs left; ``report`` its one callback."""
    device = trial.device
    return pl.Trainer(
        accelerator=device.type,
        devices=[device.index] if device.index is not None else 1,
        max_epochs=trial.config.epochs - trial.start_epoch,
        callbacks=[report],
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def inject(lightning_module: pl.LightningModule, trial: TrialContext) -> None:
    """Replace the module's configure_optimizers by the trial's optimizer over its parameters
    (its parameter groups selected from the module), and its configure_callbacks by none (on
    this instance only)."""

    def configure_optimizers() -> torch.optim.Optimizer:
        return closure_first(trial.optimizer(lightning_module))

    def configure_callbacks() -> list[pl.Callback]:
        return []

    lightning_module.configure_optimizers = configure_optimizers  # type: ignore[method-assign]
    lightning_module.configure_callbacks = configure_callbacks  # type: ignore[method-assign]


def closure_first(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``optimizer`` whose step runs Lightning's closure (forward, backward) before its hooks.

    torch runs step pre-hooks, the trial's clipping among them, before ``step`` calls the
    closure, so they would see the previous step's gradients; here they see this step's.
    """
    hooked_step = optimizer.step

    @functools.wraps(hooked_step)  # keeps the lr scheduler's mark on the step it wrapped
    def step(closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        hooked_step()
        return loss

    optimizer.step = step  # type: ignore[method-assign]
    return optimizer


def seed_epoch(seed: int, epoch: int) -> None:
    """Seed torch, numpy, random and dataloader workers for what follows ``epoch``."""
    pl.seed_everything((seed * 10_007 + epoch) % 2**32, workers=True, verbose=False)


class ReportEpochs(pl.Callback):
    """Reports each epoch's logged metrics through the trial; stops the Trainer when told to."""

    def __init__(
        self, trial: TrialContext, *, metric_names: tuple[str, ...], workload_name: str
    ) -> None:
        self.trial = trial
        self.metric_names = metric_names
        self.workload_name = workload_name
        self.epochs = trial.epochs()
        self.epoch = trial.start_epoch
        self.step_losses: list[Tensor] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Seed the first epoch as the end of the one before it did (the same on a retry)."""
        seed_epoch(self.trial.seed, self.epoch)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The epoch's number (counted on after a checkpoint); its lr schedule's step first;
        a schedule-free optimizer back to the parameters it trains (y)."""
        self.epoch = next(self.epochs)
        self.step_losses.clear()
        for optimizer in trainer.optimizers:
            set_mode(optimizer, train=True)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """A schedule-free optimizer's parameters to its average (x): validation, the epoch's
        checkpoint and, after the last epoch, the trained module are at x."""
        for optimizer in trainer.optimizers:
            set_mode(optimizer, train=False)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: STEP_OUTPUT,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Keep the step's loss, for a train_loss the module does not log."""
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, Tensor):
            self.step_losses.append(loss.detach())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the epoch (validation has run); stop if the trial is to stop."""
        metrics = self.epoch_metrics(trainer.callback_metrics)
        if self.trial.report(self.epoch, **metrics):
            trainer.should_stop = True
        seed_epoch(self.trial.seed, self.epoch)

    def epoch_metrics(self, logged: Mapping[str, Any]) -> dict[str, float]:
        """The reported metrics from what the module logged; ValueError naming any missing."""
        values = {name: float(value) for name, value in logged.items()}
        if "train_loss" not in values and self.step_losses:
            values["train_loss"] = torch.stack(self.step_losses).float().mean().item()
        missing = [name for name in self.metric_names if name not in values]
        if missing:
            raise ValueError(
                f"{self.workload_name}: the LightningModule logged no "
                f"{', '.join(map(repr, missing))} in epoch {self.epoch} (it logged: "
                f"{', '.join(sorted(values)) or 'nothing'}); log each with self.log(name, value)"
                " in validation_step"
            )
        return {name: values[name] for name in self.metric_names}


@contextmanager
def quiet() -> Iterator[None]:
    """Lightning's info lines (devices found, tips, why fit ended) out of the worker's log, with
    its advice to give dataloaders worker processes (a sweep runs trials side by side already)
    and a deprecation inside Lightning that its users cannot act on."""
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    lightning_logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers")
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`")
            yield
    finally:
        lightning_logger.setLevel(level)
