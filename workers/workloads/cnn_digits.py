"""The cnn-digits workload: a small convolutional net on digits as 1x8x8 images."""

from __future__ import annotations

import torch
from torch import nn

from optisweep.workers.workloads.base import Built, WorkloadConfig
from optisweep.workers.workloads.digits import accuracy, cross_entropy, digits_split


class CNNDigits:
    """Two 3x3 convolutions, one 2x2 max-pool and a linear classifier."""

    name = "cnn-digits"
    packable = True
    metric_names: tuple[str, ...] = ("val_accuracy",)
    config_model = WorkloadConfig

    def build(self, config: WorkloadConfig, *, seed: int, device: torch.device) -> Built:
        """The conv net and the fixed digits split (as images) on ``device``."""
        model = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        ).to(device)
        train, val = digits_split(device, image=True)
        return Built(model=model, train=train, val=val, loss_fn=cross_entropy, metrics=accuracy)
