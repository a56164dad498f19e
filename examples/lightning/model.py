"""A plain LightningModule, tuned by optisweep as it is: a function workload (see sweep.yaml).

``DigitsClassifier`` and ``DigitsData`` are what a Lightning user writes anyway, nothing in them
is optisweep's. The last lines wire them into a workload: optisweep builds both from the trial's
config, replaces the module's ``configure_optimizers`` by the trial's optimizer (family,
hyperparameters, lr schedule, clipping) and reports what ``validation_step`` logs each epoch.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from pydantic import Field
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from optisweep.integrations.lightning import lightning_workload
from optisweep.workloads import WorkloadConfig


class DigitsClassifier(pl.LightningModule):
    """An MLP for scikit-learn's 8x8 digits."""

    def __init__(self, hidden: int = 64, dropout: float = 0.1, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10)
        )

    def forward(self, images: Tensor) -> Tensor:
        """Class logits for flat images."""
        return self.net(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy of one batch; its epoch mean is logged as train_loss."""
        images, labels = batch
        loss = nn.functional.cross_entropy(self(images), labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """Log val_loss and val_accuracy (averaged over the epoch by Lightning)."""
        images, labels = batch
        logits = self(images)
        self.log("val_loss", nn.functional.cross_entropy(logits, labels))
        self.log("val_accuracy", (logits.argmax(dim=1) == labels).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam, when trained on its own; under optisweep the trial's optimizer instead."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])


class DigitsData(pl.LightningDataModule):
    """The digits, scaled to [0, 1], in a fixed 80/20 train/validation split."""

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        """Load the digits (bundled with scikit-learn: no download) and split them."""
        digits = load_digits()
        images = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        labels = torch.tensor(digits.target, dtype=torch.long)
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
        cut = int(0.8 * len(labels))
        self.train_set = TensorDataset(images[order[:cut]], labels[order[:cut]])
        self.val_set = TensorDataset(images[order[cut:]], labels[order[cut:]])

    def train_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        """Shuffled batches of the training split."""
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader[tuple[Tensor, ...]]:
        """The validation split in one batch."""
        return DataLoader(self.val_set, batch_size=len(self.val_set))


class Config(WorkloadConfig):
    """The fields a sweep may set under ``workload:`` (beside epochs and batch_size)."""

    hidden: int = Field(default=64, ge=1, le=4096)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    batch_size: int = Field(default=64, ge=1)
    """Examples per step (an int: the DataLoader's)."""


workload = lightning_workload(
    module=lambda config: DigitsClassifier(hidden=config.hidden, dropout=config.dropout),
    data=lambda config: DigitsData(batch_size=config.batch_size),
    metrics=("val_accuracy",),
    config=Config,
)
