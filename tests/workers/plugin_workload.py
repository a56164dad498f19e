"""A workload as a user's package would provide it, registered in tests through an entry point."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from workers.workloads import Built, WorkloadConfig


def _squared_error(output: Tensor, targets: Tensor) -> Tensor:
    return nn.functional.mse_loss(output.squeeze(1), targets)


def _no_metrics(output: Tensor, targets: Tensor) -> dict[str, float]:
    return {}


class TinyRegression:
    """Fit y = 2x + 1 with one linear unit."""

    name = "tiny-regression"
    packable = False
    metric_names: tuple[str, ...] = ()
    config_model = WorkloadConfig

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        """The linear unit and 32 points of the line on ``device``."""
        inputs = torch.linspace(-1.0, 1.0, 32, device=device).unsqueeze(1)
        data = (inputs, 2.0 * inputs.squeeze(1) + 1.0)
        model = nn.Linear(1, 1).to(device)
        return Built(model=model, train=data, val=data, loss_fn=_squared_error, metrics=_no_metrics)


class PackableRegression(TinyRegression):
    """The same fit, as a user's workload that packs."""

    name = "tiny-regression-packed"
    packable = True


TINY_REGRESSION = TinyRegression()
TINY_PACKABLE = PackableRegression()
NOT_A_WORKLOAD = object()
