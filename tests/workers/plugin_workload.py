"""A workload as a user's package would provide it, registered in tests through an entry point."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optisweep.workloads import Built, WorkloadConfig


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


class Centred(nn.Module):
    """A model that mixes examples: each hidden unit is centred over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(1, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x: Tensor) -> Tensor:
        """The line through a batch-centred hidden layer."""
        h = self.hidden(x)
        return self.out(h - h.mean(dim=0))


class CentredRegression(PackableRegression):
    """The same fit through a model the fused pass cannot follow: its packs run under vmap."""

    name = "centred-regression"

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        """The line's points and the batch-centring model."""
        built = super().build(config, seed=seed, device=device)
        return Built(
            model=Centred().to(device),
            train=built.train,
            val=built.val,
            loss_fn=_squared_error,
            metrics=_no_metrics,
        )


TINY_REGRESSION = TinyRegression()
CENTRED = CentredRegression()
TINY_PACKABLE = PackableRegression()
NOT_A_WORKLOAD = object()
