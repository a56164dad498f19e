"""Shared pieces of the digits workloads: the fixed train/validation split, loss and accuracy."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

TRAIN_SIZE = 1_437
VAL_SIZE = 360
_SPLIT_SEED = 0
"""Fixed so that every trial of a sweep sees the same split, whatever its own seed."""


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits as (pixels [N, 64] float, labels [N] int64).

    Read from the CSV file scikit-learn ships, without importing scikit-learn (about a second
    of a fresh worker's start, most of it scipy); ``load_digits`` where the file has moved.
    """
    spec = importlib.util.find_spec("sklearn")
    origin = Path(spec.origin) if spec is not None and spec.origin else None
    csv = origin.parent / "datasets" / "data" / "digits.csv.gz" if origin else None
    if csv is None or not csv.is_file():
        from sklearn.datasets import load_digits

        digits = load_digits()
        return np.asarray(digits.data), np.asarray(digits.target, dtype=np.int64)
    table = np.loadtxt(csv, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


@lru_cache(maxsize=1)
def _split() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    pixels, targets = load_digits_arrays()
    features = torch.from_numpy(np.asarray(pixels, dtype=np.float32) / 16.0)
    labels = torch.from_numpy(targets)
    order = torch.from_numpy(np.random.default_rng(_SPLIT_SEED).permutation(len(labels)))
    train, val = order[:TRAIN_SIZE], order[TRAIN_SIZE : TRAIN_SIZE + VAL_SIZE]
    return features[train], labels[train], features[val], labels[val]


def digits_split(
    device: torch.device, *, image: bool = False
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(train, val) digits on ``device``, pixels in [0, 1]: flat [N, 64] or images [N, 1, 8, 8].

    Pixels come in torch's default dtype, so a float64 model gets float64 inputs.
    """
    train_x, train_y, val_x, val_y = _split()
    shape = (-1, 1, 8, 8) if image else (-1, 64)
    dtype = torch.get_default_dtype()
    return (
        (train_x.reshape(shape).to(device, dtype), train_y.to(device)),
        (val_x.reshape(shape).to(device, dtype), val_y.to(device)),
    )


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of class logits against integer labels: ``F.cross_entropy``'s
    arithmetic (log-softmax, the label's entry, the mean) written out, because a pack's loss
    runs under ``torch.func.vmap``, where each of these batches natively and
    ``F.cross_entropy`` goes through a Python decomposition (a pack of 32 trained ~8% faster
    on the CPU, with bit-identical metrics)."""
    picked = logits.log_softmax(dim=-1).gather(-1, labels.unsqueeze(-1))
    return -picked.mean()


def accuracy(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """The fraction of validation samples whose highest logit is the true class."""
    return {"val_accuracy": (logits.argmax(dim=1) == labels).float().mean().item()}
