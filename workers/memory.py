"""How many pack members fit a device: one member's cost, and the pack cut into parts that fit."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from optimizers import OPTIMIZERS
from workers.batches import epoch_batches, forward
from workers.workloads import parse_workload_config

DEVICE_MEMORY_FRACTION = 0.8
"""The share of a GPU's free memory a pack may plan to use (the rest is headroom)."""


def member_memory_bytes(workload: dict[str, Any], optimizers: list[str]) -> int:
    """What one more pack member costs in memory, estimated from a probe of one member.

    Parameters and gradients, plus the largest optimizer state of these families (parameter
    count x (2 + state tensors) x element size), plus the activations of one training step,
    measured on a probe forward pass (every module's output on one batch).
    """
    workload_, config = parse_workload_config(workload)
    device = torch.device("cpu")
    built = workload_.build(config, seed=0, device=device)
    params = list(built.model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    state = max(OPTIMIZERS[name].state_tensors for name in optimizers)
    activation_bytes = 0

    def count(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal activation_bytes
        if isinstance(output, Tensor):
            activation_bytes += output.numel() * output.element_size()

    handles = [m.register_forward_hook(count) for m in built.model.modules()]
    try:
        inputs, targets = next(
            epoch_batches(built.train, seed=0, epoch=1, batch_size=config.batch_size, device=device)
        )
        built.loss_fn(forward(built.model, inputs), targets).backward()
    finally:
        for handle in handles:
            handle.remove()
    return param_bytes * (2 + state) + activation_bytes


def split_for_memory(members: int, *, member_bytes: int, free_bytes: int) -> list[list[int]]:
    """Members 0..members-1 in consecutive groups that each fit ``DEVICE_MEMORY_FRACTION``
    of ``free_bytes`` at ``member_bytes`` apiece (at least one member per group)."""
    fit = max(1, int(free_bytes * DEVICE_MEMORY_FRACTION) // max(1, member_bytes))
    return [list(range(start, min(start + fit, members))) for start in range(0, members, fit)]


def free_device_memory(device: torch.device) -> int | None:
    """Bytes free on ``device`` now: CUDA's own count, or None on the CPU (not planned for)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)
