"""The cnn-bn-digits workload: a convolutional net with BatchNorm on digits as 1x8x8 images."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from optisweep.workers.workloads.base import Built, WorkloadConfig
from optisweep.workers.workloads.digits import accuracy, cross_entropy, digits_split


class CNNBNConfig(WorkloadConfig):
    """The net's width: channels of its first convolution (the second has twice as many)."""

    channels: int = Field(default=16, ge=1, le=1_024)


class CNNBNDigits:
    """Two conv-BatchNorm-ReLU blocks, a 2x2 max-pool and a linear classifier.

    BatchNorm keeps running statistics per trial, so a packed trial carries its own buffers.
    """

    name = "cnn-bn-digits"
    packable = True
    metric_names: tuple[str, ...] = ("val_accuracy",)
    config_model = CNNBNConfig

    def build(self, config: CNNBNConfig, *, seed: int, device: torch.device) -> Built:
        """The conv net and the fixed digits split (as images) on ``device``."""
        width = config.channels
        model = nn.Sequential(
            nn.Conv2d(1, width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 4 * 4, 10),
        ).to(device)
        train, val = digits_split(device, image=True)
        return Built(model=model, train=train, val=val, loss_fn=cross_entropy, metrics=accuracy)
