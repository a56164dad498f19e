"""A function workload a user writes: their own loop, with the trial's optimizer."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from optisweep.workloads import TrialContext, WorkloadConfig, function_workload


class LoopConfig(WorkloadConfig):
    """How the loop misbehaves, for the tests."""

    fail_at_epoch: int = Field(default=0, ge=0)
    nan_at_epoch: int = Field(default=0, ge=0)
    type_error: bool = False
    """Call a model with a keyword it does not take, in the first step (a bug no retry fixes)."""


@function_workload(metrics=("lr",), config=LoopConfig)
def fit(trial: TrialContext) -> None:
    """Fit y = 2x + 1 with mini-batches; reports the optimizer's lr too."""
    config = trial.config
    assert isinstance(config, LoopConfig)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, generator=generator)
    y = 2 * x + 1
    model = nn.Linear(1, 1).to(trial.device)
    optimizer = trial.optimizer(model)  # the model: parameter-group rules select from it
    trial.track(model)
    for epoch in trial.epochs():
        total = 0.0
        for start in range(0, 128, config.batch_size):
            batch = slice(start, start + config.batch_size)
            optimizer.zero_grad()
            inputs = {"input": x[batch], "scale": 2.0} if config.type_error else {"input": x[batch]}
            loss = nn.functional.mse_loss(model(**inputs), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item()
        if epoch == config.fail_at_epoch:
            raise RuntimeError(f"the user's loop broke at epoch {epoch}")
        val = nn.functional.mse_loss(model(x), y).item()
        if epoch == config.nan_at_epoch:
            val = math.nan
        if trial.report(epoch, train_loss=total, val_loss=val, lr=optimizer.param_groups[0]["lr"]):
            return
