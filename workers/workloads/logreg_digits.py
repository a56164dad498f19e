"""The logreg-digits workload: multinomial logistic regression (Linear 64-10) on digits."""

from __future__ import annotations

import torch
from torch import nn

from optisweep.workers.workloads.base import Built, WorkloadConfig
from optisweep.workers.workloads.digits import accuracy, cross_entropy, digits_split


class LogRegDigits:
    """A convex baseline: one linear layer from 64 pixels to 10 class logits."""

    name = "logreg-digits"
    packable = True
    metric_names: tuple[str, ...] = ("val_accuracy",)
    config_model = WorkloadConfig

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        """The linear model and the fixed digits split on ``device``."""
        model = nn.Linear(64, 10).to(device)
        train, val = digits_split(device)
        return Built(model=model, train=train, val=val, loss_fn=cross_entropy, metrics=accuracy)
