"""Shared pieces of the test-function workloads: no data, each step is one function evaluation."""

from __future__ import annotations

from typing import Protocol, cast

import torch
from pydantic import Field
from torch import Tensor, nn

from optisweep.workers.workloads.base import Built, WorkloadConfig


class FunctionConfig(WorkloadConfig):
    """A test function has no data, so a batch is one evaluation and an epoch a number of steps."""

    batch_size: int = Field(default=1, ge=1, le=1)
    steps_per_epoch: int = Field(default=100, ge=1, le=100_000)


def evaluation_data(
    steps_per_epoch: int, device: torch.device
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, val) placeholder rows without features: ``steps_per_epoch`` of them, then one."""
    train = (
        torch.zeros(steps_per_epoch, 0, device=device),
        torch.zeros(steps_per_epoch, device=device),
    )
    val = (torch.zeros(1, 0, device=device), torch.zeros(1, device=device))
    return train, val


def function_value(output: Tensor, targets: Tensor) -> Tensor:
    """The loss of a test function is its value; the placeholder targets are ignored."""
    return output.mean()


class FunctionModel(Protocol):
    """A test function as a module: its value, and how far its point is from the optimum."""

    def distance_to_optimum(self) -> float: ...


def function_built(model: nn.Module, steps_per_epoch: int, device: torch.device) -> Built:
    """A test function's ``Built``: its value as the loss, measured at the end of each epoch
    (``train_loss="full"``), and its distance to the optimum as the metric."""
    train, val = evaluation_data(steps_per_epoch, device)
    point = cast(FunctionModel, model)

    def metrics(output: Tensor, targets: Tensor) -> dict[str, float]:
        return {"distance_to_optimum": point.distance_to_optimum()}

    return Built(
        model=model,
        train=train,
        val=val,
        loss_fn=function_value,
        metrics=metrics,
        train_loss="full",
    )
