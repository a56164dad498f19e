"""Where and how long a job runs: its torch device, its optimizer steps per epoch, and the lr
schedules resolved for the run's length."""

from __future__ import annotations

import math

import torch

from optisweep.optimizers import Schedule, resolve_schedule
from optisweep.workers.batches import batch_rows, data_size
from optisweep.workers.specs import parse_device
from optisweep.workers.workloads import Built


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``: "auto" is cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = parse_device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {name!r} requested but CUDA is not available")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device: {name!r} requested but only {count} CUDA device(s) exist")
    return device


def steps_per_epoch(built: Built, batch_size: int | str) -> int:
    """Optimizer steps in one epoch: one per batch, the last one possibly short."""
    size = data_size(built.train)
    return math.ceil(size / batch_rows(batch_size, size))


def schedule_counts(schedule: Schedule, *, epochs: int, steps: int) -> int:
    """How many times ``schedule`` advances in a run of ``epochs`` of ``steps`` steps each."""
    return epochs * steps if schedule.per == "step" else epochs


def run_schedule(schedule: Schedule, *, epochs: int, steps: int) -> Schedule:
    """``schedule`` with what it leaves to the run's length (cosine's t_max, a step
    schedule's step_size) set for a run of ``epochs`` epochs of ``steps`` optimizer steps."""
    return resolve_schedule(schedule, schedule_counts(schedule, epochs=epochs, steps=steps))
