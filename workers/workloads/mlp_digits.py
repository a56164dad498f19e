"""The mlp-digits workload: a 64-128-10 ReLU MLP on scikit-learn's digits (``hidden`` sets
its width)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from optisweep.workers.workloads.base import Built, WorkloadConfig
from optisweep.workers.workloads.digits import accuracy, cross_entropy, digits_split


class MLPConfig(WorkloadConfig):
    """The hidden layer's width."""

    hidden: int = Field(default=128, ge=1, le=65_536)


class MLPDigits:
    """A one-hidden-layer MLP classifying 8x8 digits from their 64 flattened pixels."""

    name = "mlp-digits"
    packable = True
    metric_names: tuple[str, ...] = ("val_accuracy",)
    config_model = MLPConfig

    def build(self, config: MLPConfig, *, seed: int, device: torch.device) -> Built:
        """The MLP and the fixed digits split on ``device``."""
        width = config.hidden
        model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10)).to(device)
        train, val = digits_split(device)
        return Built(model=model, train=train, val=val, loss_fn=cross_entropy, metrics=accuracy)
