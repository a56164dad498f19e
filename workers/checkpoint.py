"""Trial checkpoints: one file per trial, the same whether it trained alone or in a pack.

A checkpoint holds a trial's model (parameters and buffers), its torch.optim state dict, how
many epochs it has run, that epoch's metrics and every earlier epoch's (so an attempt that
resumes from it can report again epochs the controller may have missed: a server killed with
reports still in its inbox loses them, the checkpoint does not). A pack writes one per member
(through the PopulationOptimizer's member export), so a retried pack resumes every member where
it stopped and any member can be continued alone with ``train_trial(spec, resume=path)``.
Files are written to a temporary name and renamed, so a reader never sees half a checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from optisweep.optimizers import MemberConfig, MemberExport

FORMAT_VERSION = 2
"""2 added ``history``; version 1 files still load (their history is their last epoch)."""


@dataclass
class Checkpoint:
    """A trial after ``epoch`` epochs: model state, optimizer state, that epoch's metrics."""

    epoch: int
    metrics: dict[str, float]
    config: MemberConfig
    model: dict[str, Tensor]
    """The model's state_dict (parameters and buffers by name)."""
    optimizer_state: dict[str, Any]
    """A state dict for the torch.optim optimizer of ``config`` over ``model``'s parameters."""
    step: int
    """Optimizer steps taken."""
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    """Every epoch's metrics up to ``epoch`` (epoch -> metrics), as far as this trial knows."""
    model_state: dict[str, Any] | None = None
    """A function workload's state instead of ``model`` and ``optimizer_state``: what its
    ``TrialContext.state()`` gave (its tracked modules and optimizer)."""

    def member_export(self, model: nn.Module) -> MemberExport:
        """This checkpoint as a PopulationOptimizer member export for ``model``'s parameters."""
        params = [self.model[name] for name, _ in model.named_parameters()]
        return MemberExport(
            config=self.config,
            params=params,
            optimizer_state=self.optimizer_state,
            step=self.step,
            schedule_step=self.step if self.config.schedule.per == "step" else self.epoch,
            lr_multiplier=float(
                self.optimizer_state["param_groups"][0]["lr"]
                / self.optimizer_state["param_groups"][0]["initial_lr"]
            ),
        )


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically (a temporary file renamed over ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "version": FORMAT_VERSION,
        "epoch": checkpoint.epoch,
        "metrics": dict(checkpoint.metrics),
        "config": checkpoint.config.model_dump(mode="json"),
        "model": {name: value.detach().cpu() for name, value in checkpoint.model.items()},
        "optimizer_state": _to_cpu(checkpoint.optimizer_state),
        "step": checkpoint.step,
        "history": {int(epoch): dict(metrics) for epoch, metrics in checkpoint.history.items()},
        "model_state": _to_cpu(checkpoint.model_state),
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def load_checkpoint(path: str | Path, *, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``, its tensors moved to ``device``."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if payload.get("version") not in (1, FORMAT_VERSION):
        raise ValueError(
            f"checkpoint {str(path)!r}: format version {payload.get('version')!r}, "
            f"expected at most {FORMAT_VERSION}"
        )
    return Checkpoint(
        epoch=int(payload["epoch"]),
        metrics={name: float(value) for name, value in payload["metrics"].items()},
        config=MemberConfig.model_validate(payload["config"]),
        model=payload["model"],
        optimizer_state=payload["optimizer_state"],
        step=int(payload["step"]),
        history={
            int(epoch): {name: float(value) for name, value in metrics.items()}
            for epoch, metrics in payload.get(
                "history", {payload["epoch"]: payload["metrics"]}
            ).items()
        },
        model_state=payload.get("model_state"),
    )


def _to_cpu(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    return value


def check_resumable(checkpoint: Checkpoint, config: MemberConfig) -> None:
    """ValueError unless ``checkpoint`` was taken from a trial with this optimizer config."""
    if checkpoint.config.optimizer != config.optimizer:
        raise ValueError(
            f"resume: the checkpoint is of a {checkpoint.config.optimizer!r} trial, "
            f"not {config.optimizer!r}"
        )
    if checkpoint.config.validated() != config.validated():
        raise ValueError(
            f"resume: the checkpoint's hyperparameters {checkpoint.config.hyperparameters} "
            f"differ from {config.hyperparameters}"
        )
