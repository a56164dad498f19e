"""The quadratic workload: an ill-conditioned quadratic 0.5 x^T A x with diagonal A, minimum 0."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import Tensor, nn

from optisweep.workers.workloads.base import Built
from optisweep.workers.workloads.functions import FunctionConfig, function_built


class QuadraticConfig(FunctionConfig):
    """The quadratic's size and conditioning; ``problem_seed`` picks A, the trial seed the start."""

    dim: int = Field(default=10, ge=1, le=1_000_000)
    condition_number: float = Field(default=1_000.0, ge=1.0, le=1e12)
    problem_seed: int = Field(default=0, ge=0)


class QuadraticFunction(nn.Module):
    """0.5 * sum_i a_i x_i^2: a diagonal quadratic whose minimum is 0 at x = 0."""

    curvature: Tensor

    def __init__(self, curvature: Tensor, start: Tensor) -> None:
        super().__init__()
        self.register_buffer("curvature", curvature)
        self.x = nn.Parameter(start)

    def forward(self, inputs: Tensor) -> Tensor:
        """The function's value, once per call (shape [1]): the batch carries no data."""
        return (0.5 * (self.curvature * self.x.square()).sum()).reshape(1)

    def distance_to_optimum(self) -> float:
        """Euclidean distance from x to the minimum at the origin."""
        with torch.no_grad():
            return self.x.norm().item()


def curvature(config: QuadraticConfig) -> Tensor:
    """A's diagonal: eigenvalues log-spaced from 1 to the condition number, shuffled."""
    values = torch.logspace(0.0, math.log10(config.condition_number), config.dim)
    order = torch.randperm(config.dim, generator=torch.Generator().manual_seed(config.problem_seed))
    return values[order]


class Quadratic:
    """A quadratic bowl stretched by ``condition_number``: the textbook case for momentum."""

    name = "quadratic"
    packable = True
    metric_names: tuple[str, ...] = ("distance_to_optimum",)
    config_model = QuadraticConfig

    def build(self, config: QuadraticConfig, *, seed: int, device: torch.device) -> Built:
        """The quadratic at a seeded standard-normal start, ``steps_per_epoch`` steps an epoch."""
        start = torch.randn(config.dim, generator=torch.Generator().manual_seed(seed))
        model = QuadraticFunction(curvature(config), start).to(device)
        return function_built(model, config.steps_per_epoch, device)
