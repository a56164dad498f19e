"""The rosenbrock workload: minimise the 2-D Rosenbrock function from near (-1.5, 2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optisweep.workers.workloads.base import Built
from optisweep.workers.workloads.functions import FunctionConfig, function_built

_START = (-1.5, 2.0)
_START_SPREAD = 0.1
_OPTIMUM = (1.0, 1.0)


class RosenbrockFunction(nn.Module):
    """(1 - x)^2 + 100 (y - x^2)^2 with x and y as two scalar parameters."""

    def __init__(self, x: float, y: float) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.tensor(x))
        self.y = nn.Parameter(torch.tensor(y))

    def forward(self, inputs: Tensor) -> Tensor:
        """The function's value, once per call (shape [1]): the batch carries no data."""
        value = (1.0 - self.x) ** 2 + 100.0 * (self.y - self.x**2) ** 2
        return value.reshape(1)

    def distance_to_optimum(self) -> float:
        """Euclidean distance from (x, y) to the minimum at (1, 1)."""
        with torch.no_grad():
            return torch.hypot(self.x - _OPTIMUM[0], self.y - _OPTIMUM[1]).item()


class Rosenbrock:
    """The classic curved valley; a trial's seed jitters its start point around (-1.5, 2)."""

    name = "rosenbrock"
    packable = True
    metric_names: tuple[str, ...] = ("distance_to_optimum",)
    config_model = FunctionConfig

    def build(self, config: FunctionConfig, *, seed: int, device: torch.device) -> Built:
        """The function at a seeded start point, and ``steps_per_epoch`` evaluations per epoch."""
        jitter = torch.randn(2, generator=torch.Generator().manual_seed(seed)) * _START_SPREAD
        model = RosenbrockFunction(_START[0] + jitter[0].item(), _START[1] + jitter[1].item())
        model = model.to(device)
        return function_built(model, config.steps_per_epoch, device)
