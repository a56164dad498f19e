"""Population-based training inside a pack: exploit the best members, explore around them.

Every ``interval`` epochs, within each optimizer family of the pack, the members in the bottom
``quantile`` by the objective copy the weights and optimizer state of a member drawn from the
top ``quantile`` (an in-memory copy between rows of the stack) and take its hyperparameters
with lr and each beta perturbed: lr times 0.8 or 1.2, 1 - beta times 0.8 or 1.2 (for
``perturbation`` 0.2). PBT stays within a family, so a trial's family never changes and the
leaderboard still compares families. Draws come from a generator seeded by the pack's data seed
and the epoch, so a pack does the same exploits every time.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from optisweep.optimizers import MemberConfig, MemberExport
from optisweep.workers.specs import PbtConfig
from optisweep.workers.stacking import Stack, export_members, stack_members


@dataclass(frozen=True)
class Exploit:
    """Member ``target`` took member ``source``'s state with these (perturbed) settings."""

    target: int
    source: int
    config: MemberConfig


def perturbed(config: MemberConfig, rng: random.Random, perturbation: float) -> MemberConfig:
    """The config with lr and each beta (as 1 - beta) scaled by 1 -/+ ``perturbation``."""
    spec = config.spec
    hyperparameters: dict[str, Any] = config.validated().model_dump(mode="json")
    factors = (1 - perturbation, 1 + perturbation)
    hyperparameters["lr"] = hyperparameters["lr"] * rng.choice(factors)
    for target in (spec.beta1, spec.beta2):
        if target is None:
            continue
        current = hyperparameters[target.field]
        value = current if target.index is None else current[target.index]
        beta = min(max(1 - (1 - float(value)) * rng.choice(factors), 0.0), 0.9999)
        if target.index is None:
            hyperparameters[target.field] = beta
        else:
            items = list(current)
            items[target.index] = beta
            hyperparameters[target.field] = items
    return type(config).model_validate({**config.model_dump(), "hyperparameters": hyperparameters})


def plan_exploits(
    pbt: PbtConfig,
    *,
    epoch: int,
    seed: int,
    values: dict[int, float],
    configs: list[MemberConfig],
) -> list[Exploit]:
    """Which members copy which at this epoch (none unless it is a perturbation epoch).

    ``values`` holds the objective of every member still training, finite values only.
    """
    if epoch % pbt.interval:
        return []
    rng = random.Random(f"{seed}-{epoch}")
    families: dict[str, list[int]] = {}
    for k in sorted(values):
        families.setdefault(configs[k].optimizer, []).append(k)
    exploits = []
    for members in families.values():
        count = int(len(members) * pbt.quantile)
        if count == 0:
            continue
        ranked = sorted(members, key=lambda k: (values[k], k), reverse=pbt.mode == "max")
        top, bottom = ranked[:count], ranked[-count:]
        for target in bottom:
            source = rng.choice(top)
            config = perturbed(configs[source], rng, pbt.perturbation)
            exploits.append(Exploit(target, source, config))
    return exploits


def exploit_stack(
    stack: Stack,
    models: dict[int, nn.Module],
    configs: list[MemberConfig],
    pbt: PbtConfig,
    epoch: int,
    seed: int,
    metrics: dict[int, dict[str, float]],
    finite: dict[int, bool],
    exploited: Callable[[int, list[Exploit]], None] | None,
) -> Stack:
    """PBT's exploit and explore step: copy rows within families, restack with new settings."""
    values = {
        k: metrics[k][pbt.metric]
        for k in metrics
        if finite[k] and math.isfinite(metrics[k].get(pbt.metric, math.nan))
    }
    exploits = plan_exploits(pbt, epoch=epoch, seed=seed, values=values, configs=configs)
    if not exploits:
        return stack
    members = list(metrics)
    exports = export_members(stack, members)
    sources = {e.source: copy.deepcopy(models[e.source].state_dict()) for e in exploits}
    for e in exploits:
        models[e.target].load_state_dict(sources[e.source])
        source = exports[e.source]
        exports[e.target] = MemberExport(
            config=e.config,
            params=[p.clone() for p in source.params],
            optimizer_state=copy.deepcopy(source.optimizer_state),
            step=source.step,
            schedule_step=source.schedule_step,
            lr_multiplier=source.lr_multiplier,
        )
        configs[e.target] = e.config
    for k in stack.members:  # frozen rows go as they are
        if k not in exports:
            exports[k] = stack.optimizer.export_member(stack.members.index(k))
    stacked = stack_members(models, configs, list(stack.members), exports)
    for row, k in enumerate(stacked.members):
        if k not in metrics:
            stacked.optimizer.freeze(row)
    if exploited is not None:
        exploited(epoch, exploits)
    return stacked
