"""Function workloads: the user's own training loop, with the trial's optimizer handed to it.

A function workload is a function of a ``TrialContext``: it builds its model and data as it
likes, asks the context for the trial's optimizer (the family, hyperparameters, lr schedule and
clipping of the trial, from the shared optimizer module), iterates ``trial.epochs()`` (which
starts after the last checkpoint when an attempt is retried) and calls ``trial.report`` after
each epoch, which says whether to stop (an early-stopping scheduler, a cancel, a NaN loss).
Each report gets ``time_seconds``: the seconds since the attempt's first epoch began (since the
function's start if it never iterates ``epochs()``) less the time reports took, on from the
checkpoint's on a retry; a function that reports ``time_seconds`` itself keeps its own value.
Such trials cannot be packed: their loop is the user's.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from optisweep.optimizers.param_groups import ParamInfo, describe_params
from optisweep.workers.workloads.base import TIME_METRIC, Built, WorkloadConfig

Report = Callable[[int, dict[str, float]], bool]
"""report(epoch, metrics) -> whether to stop; it also writes the checkpoint when one is due."""


@dataclass
class TrialContext:
    """What a function workload gets: its config, seed and device, and the trial's optimizer."""

    config: WorkloadConfig
    """The workload's config: ``epochs``, ``batch_size`` and the workload's own fields."""
    seed: int
    device: torch.device
    make_optimizer: Callable[[list[Tensor], list[ParamInfo] | None], torch.optim.Optimizer]
    start_epoch: int = 0
    """The last epoch an earlier attempt checkpointed (0: a fresh start)."""
    restore_state: dict[str, Any] | None = None
    """What ``state()`` gave at that checkpoint: the tracked modules and the optimizer."""
    send: Report | None = None
    """Ends an epoch in the worker's lifecycle (history, divergence, checkpoint, report);
    whether the trial stops."""
    advance: Callable[[], None] | None = None
    """Called after each epoch: the lr schedule's step."""
    stopped: bool = False
    last: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    trained_seconds: float = 0.0
    """Seconds trained through the last report (on a retry, the checkpoint's to begin with)."""
    _clock_start: float = field(default_factory=time.perf_counter)
    """When the time since the last report started to count: the first epoch, each report's end."""
    _optimizer: torch.optim.Optimizer | None = None
    _modules: list[nn.Module] = field(default_factory=list)
    _params: list[Tensor] = field(default_factory=list)

    def optimizer(self, params: nn.Module | Iterable[Tensor]) -> torch.optim.Optimizer:
        """The trial's optimizer over a model's parameters (family, hyperparameters, parameter
        groups, lr schedule and clipping as the trial says); on a retry it continues from the
        checkpoint's state. Pass the model itself when the sweep has parameter groups: their
        rules select by parameter name and module."""
        info = describe_params(params) if isinstance(params, nn.Module) else None
        self._params = list(params.parameters() if isinstance(params, nn.Module) else params)
        self._optimizer = self.make_optimizer(self._params, info)
        saved = self.restore_state
        if saved is not None:
            if saved.get("params") is not None:
                with torch.no_grad():
                    for i, param in enumerate(self._params):
                        param.copy_(saved["params"][str(i)])
            if saved.get("optimizer"):
                # The checkpoint holds the lr its epoch ran at; the schedule already set the
                # lr of the epoch this attempt starts with: keep the schedule's.
                scheduled = [group["lr"] for group in self._optimizer.param_groups]
                self._optimizer.load_state_dict(saved["optimizer"])
                for group, lr in zip(self._optimizer.param_groups, scheduled, strict=True):
                    group["lr"] = lr
        return self._optimizer

    def track(self, *modules: nn.Module) -> None:
        """Modules whose whole state (buffers too, e.g. BatchNorm's) travels in checkpoints;
        on a retry they are restored here. Without it, the parameters given to ``optimizer``
        travel instead."""
        saved = (self.restore_state or {}).get("modules")
        for module in modules:
            if saved is not None:
                prefix = f"{len(self._modules)}."
                own = {k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)}
                module.load_state_dict(own)
            self._modules.append(module)

    def epochs(self) -> Iterator[int]:
        """The epochs to train, counted from 1: after the checkpoint's on a retry; ends early
        once ``report`` said to stop."""
        for epoch in range(self.start_epoch + 1, self.config.epochs + 1):
            if self.stopped:
                return
            if epoch == self.start_epoch + 1:
                self._clock_start = time.perf_counter()
            yield epoch
            if self.advance is not None:
                self.advance()

    def report(self, epoch: int, **metrics: float) -> bool:
        """Record this epoch's metrics; whether the trial should stop (then return)."""
        values = {name: float(value) for name, value in metrics.items()}
        elapsed = self.trained_seconds + time.perf_counter() - self._clock_start
        self.trained_seconds = values.setdefault(TIME_METRIC, elapsed)
        self.last, self.epochs_run = values, epoch
        if self.send is not None and self.send(epoch, values):  # diverged, or told to stop
            self.stopped = True
        self._clock_start = time.perf_counter()  # checkpoints and reports are not training
        return self.stopped

    def state(self) -> dict[str, Any]:
        """The trial's state for a checkpoint: tracked modules (or else the optimized
        parameters) and the optimizer's state."""
        modules = {
            f"{i}.{name}": value.detach().clone()
            for i, module in enumerate(self._modules)
            for name, value in module.state_dict().items()
        }
        params = {str(i): p.detach().clone() for i, p in enumerate(self._params)}
        return {
            "modules": modules if self._modules else None,
            "params": None if self._modules else params,
            "optimizer": (
                copy.deepcopy(self._optimizer.state_dict()) if self._optimizer is not None else {}
            ),
        }


TrainFunction = Callable[[TrialContext], None]


@dataclass(frozen=True)
class FunctionWorkload:
    """A user's training function as a workload (never packed: the loop is the user's)."""

    function: TrainFunction
    name: str
    metric_names: tuple[str, ...]
    config_model: type[WorkloadConfig] = WorkloadConfig
    packable: bool = False

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        """Not for a function workload: it builds its own model in its own loop."""
        raise TypeError(f"{self.name!r} is a function workload: it runs its own loop")


def function_workload(
    *,
    metrics: tuple[str, ...] = (),
    config: type[WorkloadConfig] = WorkloadConfig,
    name: str | None = None,
) -> Callable[[TrainFunction], FunctionWorkload]:
    """Make ``train(trial)`` a workload: ``metrics`` are what it reports besides train_loss
    and val_loss, ``config`` its config model (its own fields beside epochs, batch_size)."""

    def wrap(function: TrainFunction) -> FunctionWorkload:
        return FunctionWorkload(
            function=function,
            name=name or function.__name__.replace("_", "-"),
            metric_names=tuple(metrics),
            config_model=config,
        )

    return wrap
