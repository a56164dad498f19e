"""The learning-rate range test: train briefly while the lr grows exponentially, per family.

One member per optimizer family, all from the same initialisation and on the same batches,
trained as one pack: the lr starts at ``min_lr`` and is multiplied by a constant every step so
that it reaches ``max_lr`` after ``steps`` steps (Smith, "Cyclical Learning Rates", 2017; the
fastai lr finder). Each family's loss curve is smoothed with a bias-corrected moving average;
the lr where the smoothed loss is lowest is the top of the family's search range, and the range
spans ``decades`` decades below it. A member whose smoothed loss exceeds 4x its best has
diverged and stops there.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optisweep.optimizers import MemberConfig
from optisweep.workers.batches import Inputs, epoch_batches
from optisweep.workers.fusion import StackedForward
from optisweep.workers.runtime import resolve_device
from optisweep.workers.specs import RangeTestSpec
from optisweep.workers.stacking import stack_members, stacked_losses
from optisweep.workers.workloads import parse_workload_config

SMOOTHING = 0.98
DIVERGED_FACTOR = 4.0


@dataclass(frozen=True)
class RangeTestResult:
    """One family's curve (lr, smoothed loss per step) and the lr bounds chosen from it."""

    low: float
    high: float
    lrs: list[float]
    losses: list[float]


def lr_range_test(spec: RangeTestSpec) -> dict[str, RangeTestResult]:
    """Run the range test for every family at once; each family's bounds and curve."""
    # One function on purpose: the loop reads every member's smoothed loss each step.
    workload, config = parse_workload_config(spec.workload)
    device = resolve_device(spec.device)
    gamma = (spec.max_lr / spec.min_lr) ** (1 / spec.steps)
    configs = [
        MemberConfig(
            optimizer=name,
            hyperparameters={"lr": spec.min_lr},
            schedule={"kind": "exponential", "gamma": gamma, "per": "step"},
        )
        for name in spec.optimizers
    ]
    builds = []
    for _ in configs:  # the same initialisation for every family: a fair comparison
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            builds.append(workload.build(config, seed=spec.seed, device=device))
    models = [built.model for built in builds]
    stack = stack_members(dict(enumerate(models)), configs, list(range(len(configs))), {})
    forward = StackedForward(copy.deepcopy(models[0]).to("meta"))
    losses_of = stacked_losses(forward, builds[0].loss_fn)
    forward.train()
    size = len(stack.members)
    curves: list[list[float]] = [[] for _ in range(size)]
    lrs: list[list[float]] = [[] for _ in range(size)]
    average = [0.0] * size
    best = [math.inf] * size
    done = [False] * size
    batches = _batches(builds[0].train, seed=spec.seed, batch_size=config.batch_size, device=device)
    for step in range(spec.steps):
        inputs, targets = next(batches)
        stack.optimizer.zero_grad()
        losses = losses_of(stack.params, stack.buffers, inputs, targets)
        losses.sum().backward()
        values = losses.detach().tolist()
        for row, k in enumerate(stack.members):
            if done[k]:
                continue
            lrs[k].append(stack.optimizer.lr(row))
            average[k] = SMOOTHING * average[k] + (1 - SMOOTHING) * values[row]
            smoothed = average[k] / (1 - SMOOTHING ** (step + 1))
            curves[k].append(smoothed)
            best[k] = min(best[k], smoothed)
            if not math.isfinite(smoothed) or smoothed > DIVERGED_FACTOR * best[k]:
                done[k] = True
                stack.optimizer.freeze(row)
        if all(done):
            break
        stack.optimizer.step()  # the exponential schedule advances with each step
    return {
        name: bounds(spec, lrs=lrs[k], losses=curves[k]) for k, name in enumerate(spec.optimizers)
    }


def _batches(
    data: Any, *, seed: int, batch_size: int | str, device: torch.device
) -> Iterator[tuple[Inputs, Tensor]]:
    """Full batches of ``data``, epoch after epoch (a short last batch is left out)."""
    for epoch in itertools.count(1):
        yield from epoch_batches(
            data, seed=seed, epoch=epoch, batch_size=batch_size, device=device, drop_last=True
        )


def bounds(spec: RangeTestSpec, *, lrs: list[float], losses: list[float]) -> RangeTestResult:
    """One family's search range from its smoothed curve: up to the lr of its lowest loss,
    ``spec.decades`` decades below it (and never below ``min_lr``)."""
    finite = [(loss, lr) for loss, lr in zip(losses, lrs, strict=True) if math.isfinite(loss)]
    high = min(finite)[1] if finite else spec.min_lr
    low = max(spec.min_lr, high / 10**spec.decades)
    return RangeTestResult(low=low, high=max(high, low), lrs=lrs, losses=losses)
