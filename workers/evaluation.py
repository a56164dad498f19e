"""Evaluating one model: val_loss over the whole validation set (train_loss over the training
set where a workload asks for it) and the workload's own metrics, in chunks."""

from __future__ import annotations

import torch
from torch import Tensor

from optisweep.workers.batches import Data, chunks, forward
from optisweep.workers.workloads import Built

EVAL_CHUNK = 4_096
"""Rows per forward pass when evaluating, so large datasets need not fit in one pass."""


def _mean_loss(built: Built, data: Data, device: torch.device) -> tuple[float, Tensor, Tensor]:
    """Mean loss over all rows (in float64 across chunks), the outputs and the targets."""
    total, count = 0.0, 0
    outputs, targets = [], []
    for inputs, chunk_targets in chunks(data, size=EVAL_CHUNK, device=device):
        output = forward(built.model, inputs)
        total += built.loss_fn(output, chunk_targets).item() * len(chunk_targets)
        count += len(chunk_targets)
        outputs.append(output)
        targets.append(chunk_targets)
    return total / count, torch.cat(outputs), torch.cat(targets)


@torch.no_grad()
def evaluate(built: Built, device: torch.device) -> dict[str, float]:
    """val_loss over the whole validation set and the workload's validation metrics, and
    train_loss over the whole training set where the workload measures it so ("full")."""
    built.model.eval()
    metrics = {}
    if built.train_loss == "full":
        metrics["train_loss"], _, _ = _mean_loss(built, built.train, device)
    val_loss, val_output, val_targets = _mean_loss(built, built.val, device)
    return {**metrics, "val_loss": val_loss, **built.metrics(val_output, val_targets)}
