"""A model workload a user writes: a small MLP on a synthetic regression task."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from optisweep.workloads import Built, WorkloadConfig


class RegressionConfig(WorkloadConfig):
    """The user's own field beside epochs and batch_size."""

    width: int = Field(default=16, ge=1, le=1024)


class Regression:
    """y = sin(3x) from 256 points; the metric is the validation loss itself."""

    name = "regression"
    packable = True
    metric_names: tuple[str, ...] = ("val_rmse",)
    config_model = RegressionConfig

    def build(self, config: RegressionConfig, *, seed: int, device: torch.device) -> Built:
        """The MLP and the data on ``device``."""
        x = torch.linspace(-1, 1, 256).unsqueeze(1)
        y = torch.sin(3 * x).squeeze(1)
        model = nn.Sequential(nn.Linear(1, config.width), nn.Tanh(), nn.Linear(config.width, 1))
        data = (x.to(device), y.to(device))

        def loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return nn.functional.mse_loss(output.squeeze(-1), target)

        def rmse(output: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
            return {"val_rmse": loss(output, target).sqrt().item()}

        return Built(model=model.to(device), train=data, val=data, loss_fn=loss, metrics=rmse)


workload = Regression()
not_a_workload = 42
