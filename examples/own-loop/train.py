"""Your own training loop, tuned by optisweep: a function workload.

optisweep calls ``train(trial)`` once per trial. You build the model and data and run the loop
as you like (here: gradient accumulation, a per-step learning-rate warm-up, bf16 autocast on
CUDA); the optimizer comes from ``trial.optimizer`` so its family, hyperparameters, lr schedule
and gradient clipping are the trial's. ``trial.epochs()`` starts after the last checkpoint when
a failed attempt is retried, and ``trial.report`` records an epoch's metrics and says whether
to stop (an early-stopping scheduler such as ASHA, or a cancel).
"""

from __future__ import annotations

import torch
from pydantic import Field
from sklearn.datasets import load_digits
from torch import nn

from optisweep.workloads import TrialContext, WorkloadConfig, function_workload


class Config(WorkloadConfig):
    """The fields a sweep may set under ``workload:`` (beside epochs and batch_size)."""

    hidden: int = Field(default=64, ge=1, le=4096)
    accumulate: int = Field(default=2, ge=1, le=64)
    """Micro-batches per optimizer step."""
    warmup_steps: int = Field(default=20, ge=0)


def digits(device: torch.device) -> tuple[torch.Tensor, ...]:
    """A fixed 80/20 split of scikit-learn's digits, flat, on ``device``."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(y))
    train, val = order[:cut], order[cut:]
    return tuple(t.to(device) for t in (x[train], y[train], x[val], y[val]))


@function_workload(metrics=("val_accuracy",), config=Config)
def train(trial: TrialContext) -> None:
    """Train an MLP on the digits with the trial's optimizer, reporting every epoch."""
    config = trial.config
    assert isinstance(config, Config)
    device = trial.device
    x, y, val_x, val_y = digits(device)
    model = nn.Sequential(nn.Linear(64, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 10))
    model.to(device)
    optimizer = trial.optimizer(model)  # the model itself: parameter groups select from it
    trial.track(model)  # its state travels in checkpoints, so a retried trial resumes
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    micro = max(1, config.batch_size // config.accumulate)
    steps_per_epoch = -(-len(y) // (micro * config.accumulate))
    for epoch in trial.epochs():
        model.train()
        scheduled = [group["lr"] for group in optimizer.param_groups]  # this epoch's lr
        step = (epoch - 1) * steps_per_epoch  # a resumed trial goes on where it was
        generator = torch.Generator().manual_seed(trial.seed * 10_000 + epoch)
        order = torch.randperm(len(y), generator=generator).to(device)
        total, batches = 0.0, 0
        for start in range(0, len(order), micro * config.accumulate):
            optimizer.zero_grad()
            for part in range(config.accumulate):
                batch = order[start + part * micro : start + (part + 1) * micro]
                if len(batch) == 0:
                    break
                with autocast:
                    loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
                (loss / config.accumulate).backward()
                total, batches = total + loss.item(), batches + 1
            warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
            for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
                group["lr"] = lr * warm
            optimizer.step()
            step += 1
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr
        model.eval()
        with torch.no_grad(), autocast:
            logits = model(val_x).float()
        metrics = {
            "train_loss": total / batches,
            "val_loss": nn.functional.cross_entropy(logits, val_y).item(),
            "val_accuracy": (logits.argmax(1) == val_y).float().mean().item(),
        }
        if trial.report(epoch, **metrics):
            return
