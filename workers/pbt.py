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

import random
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optimizers import MemberConfig


class PbtConfig(BaseModel):
    """When and how a pack exploits and explores, and the metric that ranks its members."""

    model_config = ConfigDict(extra="forbid")

    interval: int = Field(default=4, ge=1)
    quantile: float = Field(default=0.25, gt=0, le=0.5)
    perturbation: float = Field(default=0.2, gt=0, lt=1)
    metric: str
    mode: Literal["min", "max"]


@dataclass(frozen=True)
class Exploit:
    """Member ``target`` took member ``source``'s state with these (perturbed) settings."""

    target: int
    source: int
    config: MemberConfig


def perturbed(config: MemberConfig, rng: random.Random, perturbation: float) -> MemberConfig:
    """The config with lr and each beta (as 1 - beta) scaled by 1 -/+ ``perturbation``."""
    spec = config.spec
    hparams: dict[str, Any] = config.validated().model_dump(mode="json")
    factors = (1 - perturbation, 1 + perturbation)
    hparams["lr"] = hparams["lr"] * rng.choice(factors)
    for target in (spec.beta1, spec.beta2):
        if target is None:
            continue
        current = hparams[target.field]
        value = current if target.index is None else current[target.index]
        beta = min(max(1 - (1 - float(value)) * rng.choice(factors), 0.0), 0.9999)
        if target.index is None:
            hparams[target.field] = beta
        else:
            items = list(current)
            items[target.index] = beta
            hparams[target.field] = items
    return MemberConfig(
        optimizer=config.optimizer,
        hparams=hparams,
        schedule=config.schedule,
        clip_norm=config.clip_norm,
    )


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
