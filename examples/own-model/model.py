"""Your own model, tuned by optisweep: a small CNN with BatchNorm and Dropout on scikit-learn's
digits, upscaled to 16x16, with random-shift augmentation in a torch Dataset.

optisweep owns the training loop for a model workload, so it can train many trials as one
batched model (packing), swap optimizers, checkpoint and stop trials early. You give it what
the loop needs: a config (your own fields beside epochs and batch_size), and ``build``, which
returns the model, the data (tensors or a Dataset), the loss and the metrics.

Edit anything here: the sweep (sweep.yaml) names this file's ``workload`` as ``model:workload``.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from pydantic import Field
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.utils.data import Dataset

from optisweep.workloads import Built, WorkloadConfig


class Config(WorkloadConfig):
    """The fields a sweep may set under ``workload:`` (beside epochs and batch_size)."""

    channels: int = Field(default=8, ge=1, le=256)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    shift: int = Field(default=2, ge=0, le=4)
    """The largest random shift of a training image, in pixels."""


class Digits16(Dataset[tuple[Tensor, Tensor]]):
    """Digits as 1x16x16 images; training images shifted by up to ``shift`` pixels."""

    def __init__(self, images: Tensor, labels: Tensor, *, shift: int = 0) -> None:
        self.images, self.labels, self.shift = images, labels, shift

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        image = self.images[index]
        if self.shift:  # torch's global RNG: optisweep seeds it per epoch
            dy, dx = torch.randint(-self.shift, self.shift + 1, (2,)).tolist()
            image = torch.roll(image, shifts=(dy, dx), dims=(1, 2))
        return image, self.labels[index]


@lru_cache(maxsize=4)
def digits16(shift: int) -> tuple[Digits16, Digits16]:
    """A fixed 80/20 split of the digits, upscaled from 8x8 to 16x16.

    Cached: ``build`` runs once per trial (every member of a pack builds its own model), and
    a worker process trains many trials, so the data is read and resized once per process.
    """
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = nn.functional.interpolate(images, size=(16, 16), mode="bilinear")
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    train, val = order[:cut], order[cut:]
    return Digits16(images[train], labels[train], shift=shift), Digits16(images[val], labels[val])


class Net(nn.Sequential):
    """conv-BN-ReLU-pool twice, dropout, a linear classifier."""

    def __init__(self, channels: int, dropout: float) -> None:
        c = channels
        super().__init__(
            nn.Conv2d(1, c, 3, padding=1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c, 2 * c, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(2 * c * 4 * 4, 10),
        )


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """The loss the optimizers minimise."""
    return nn.functional.cross_entropy(logits, labels)


def accuracy(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """Metrics beside the losses, from the validation logits."""
    return {"val_accuracy": (logits.argmax(dim=1) == labels).float().mean().item()}


class Digits16Workload:
    """What optisweep needs of a model workload."""

    name = "digits16-cnn"
    packable = True  # optisweep checks it (one stacked step) when the sweep is submitted
    metric_names = ("val_accuracy",)
    config_model = Config

    def build(self, config: Config, *, seed: int, device: torch.device) -> Built:
        """The model (torch's RNG is already seeded per trial) and the data."""
        train, val = digits16(config.shift)
        model = Net(config.channels, config.dropout).to(device)
        return Built(model=model, train=train, val=val, loss_fn=cross_entropy, metrics=accuracy)


workload = Digits16Workload()
