"""K models as one: members' parameters stacked along a leading dimension, trained by one
forward and backward pass (fused, or vmapped: ``optisweep.workers.fusion``) and one
PopulationOptimizer step, evaluated in one pass.

Shared by packs (``optisweep.workers.pack``), PBT (``optisweep.workers.pbt``) and the lr
range test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import stack_module_state, vmap

from optisweep.optimizers import MemberConfig, MemberExport, PopulationOptimizer, describe_params
from optisweep.optimizers.flat import FlatParameters
from optisweep.workers.batches import Data, Inputs, chunks
from optisweep.workers.evaluation import EVAL_CHUNK
from optisweep.workers.fusion import StackedForward
from optisweep.workers.workloads import Built


@dataclass
class Stack:
    """The active members as one functional model: stacked params and buffers, an optimizer."""

    members: list[int]
    """Member index (in the PackSpec) of each row of the stack."""
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    optimizer: PopulationOptimizer


def family_key(config: MemberConfig) -> tuple[str, Any]:
    return config.optimizer, config.variant()


def stack_members(
    models: Mapping[int, nn.Module],
    configs: list[MemberConfig],
    members: list[int],
    exports: dict[int, MemberExport],
) -> Stack:
    """A stack of these members' models, optimizer state loaded from ``exports`` where given.

    Rows are ordered by family and code path: each group of the PopulationOptimizer is then a
    contiguous slice of the stack and steps through views, not gathers and scatters.
    """
    members = sorted(members, key=lambda k: family_key(configs[k]))
    params, buffers = stack_module_state([models[k] for k in members])
    flat = None
    if len({(p.dtype, p.device) for p in params.values()}) == 1:  # one buffer, one step
        flat = FlatParameters(list(params.values()))
        params = dict(zip(params, flat.params, strict=True))
    member_configs = [configs[k] for k in members]
    optimizer = PopulationOptimizer(
        list(params.values()),
        member_configs,
        flat=flat,
        param_info=describe_params(models[members[0]]),
    )
    for row, k in enumerate(members):
        if k in exports:
            optimizer.load_member(row, exports[k])
    return Stack(members=members, params=params, buffers=buffers, optimizer=optimizer)


def export_members(stack: Stack, members: Iterable[int]) -> dict[int, MemberExport]:
    rows = {k: row for row, k in enumerate(stack.members)}
    return {k: stack.optimizer.export_member(rows[k]) for k in members}


def sync_models(stack: Stack, models: Mapping[int, nn.Module]) -> None:
    """Copy each active member's stacked parameters and buffers into its own model."""
    with torch.no_grad():
        for row, k in enumerate(stack.members):
            for name, param in models[k].named_parameters():
                param.copy_(stack.params[name][row])
            for name, buffer in models[k].named_buffers():
                buffer.copy_(stack.buffers[name][row])


def stacked_losses(
    forward: StackedForward, loss_fn: Callable[[Tensor, Tensor], Tensor]
) -> Callable[[dict[str, Tensor], dict[str, Tensor], Inputs, Tensor], Tensor]:
    """losses(params, buffers, inputs, targets): every member's loss on one shared batch.

    Random layers (Dropout) draw independent masks per member; buffers (BatchNorm's running
    statistics) are each member's own.
    """
    member_losses = vmap(loss_fn, in_dims=(0, None), randomness="different")

    def losses(
        params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Inputs, y: Tensor
    ) -> Tensor:
        return member_losses(forward.outputs(params, buffers, inputs), y)

    return losses


def train_stacked_epoch(
    stack: Stack,
    forward: StackedForward,
    built: Built,
    batches: Iterable[tuple[Inputs, Tensor]],
    *,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """One pass of every active member over the shared batches. Per row: whether all its
    losses were finite, and its train_loss (losses averaged over examples, in float64)."""
    losses_of = stacked_losses(forward, built.loss_fn)
    finite = torch.ones(len(stack.members), dtype=torch.bool, device=device)
    total = torch.zeros(len(stack.members), dtype=torch.float64, device=device)
    count = 0
    forward.train()
    for inputs, targets in batches:
        stack.optimizer.zero_grad()
        losses = losses_of(stack.params, stack.buffers, inputs, targets)
        losses.sum().backward()  # each member's gradient is that of its own loss
        stack.optimizer.step()
        finite &= torch.isfinite(losses.detach())
        total += losses.detach().double() * len(targets)
        count += len(targets)
    return finite, total / max(1, count)


@torch.no_grad()
def evaluate_stacked(
    stack: Stack,
    forward: StackedForward,
    builds: Mapping[int, Built],
    rows: list[tuple[int, int]],
) -> dict[int, dict[str, float]]:
    """val_loss and the workload's metrics of these (row, member)s, all at once (and
    train_loss over the training set where the workload measures it so).

    The same quantities as ``optisweep.workers.evaluation.evaluate``, summed in float64 over
    the same chunks, from one stacked forward pass per chunk instead of one pass per member.
    """
    shared = builds[stack.members[rows[0][0]]]
    forward.train(False)
    device = next(iter(stack.params.values())).device
    index = torch.tensor([row for row, _ in rows], device=device)
    params = {name: value[index] for name, value in stack.params.items()}
    buffers = {name: value[index] for name, value in stack.buffers.items()}

    losses = vmap(shared.loss_fn, in_dims=(0, None))

    def mean_losses(data: Data) -> tuple[list[float], Tensor, Tensor]:
        totals = [0.0] * len(rows)
        count = 0
        outputs, targets = [], []
        for inputs, chunk_targets in chunks(data, size=EVAL_CHUNK, device=device):
            output = forward.outputs(params, buffers, inputs)
            for i, loss in enumerate(losses(output, chunk_targets).tolist()):
                totals[i] += loss * len(chunk_targets)
            count += len(chunk_targets)
            outputs.append(output)
            targets.append(chunk_targets)
        return [total / count for total in totals], torch.cat(outputs, dim=1), torch.cat(targets)

    full = shared.train_loss == "full"
    train_losses = mean_losses(shared.train)[0] if full else []
    val_losses, val_outputs, val_targets = mean_losses(shared.val)
    return {
        k: {
            **({"train_loss": train_losses[i]} if full else {}),
            "val_loss": val_losses[i],
            **builds[k].metrics(val_outputs[i], val_targets),
        }
        for i, (_, k) in enumerate(rows)
    }
