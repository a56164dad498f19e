"""Random search: family uniformly, lr and betas from their ranges, reproducible from a seed."""

from __future__ import annotations

import math
import random
from typing import Any

from optisweep.service.search.base import (
    NonAdaptive,
    StoredTrial,
    Suggestion,
    setting_axes,
    to_suggestion,
)
from optisweep.service.sweeps.schemas import Choice, FloatRange, IntRange, Param, Space


def sample(param: Param | float | int | bool | str, rng: random.Random) -> Any:
    """One draw from a parameter (log ranges are log-uniform)."""
    match param:
        case Choice():
            return rng.choice(param.values)
        case IntRange(log=True):
            drawn = math.exp(rng.uniform(math.log(param.low), math.log(param.high + 1)))
            return min(param.high, int(drawn))
        case IntRange():
            return rng.randint(param.low, param.high)
        case FloatRange(log_one_minus=True):
            return 1 - math.exp(rng.uniform(math.log(1 - param.high), math.log(1 - param.low)))
        case FloatRange(log=True):
            return math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
        case FloatRange():
            return rng.uniform(param.low, param.high)
    return param


class RandomSearcher(NonAdaptive):
    """num_trials independent draws from the space."""

    def __init__(self, space: Space, *, num_trials: int, seed: int) -> None:
        self._space = space
        self._remaining = num_trials
        self._rng = random.Random(seed)

    def suggest(self) -> Suggestion | None:
        """The next draw, or None once num_trials were suggested."""
        if self._remaining <= 0:
            return None
        self._remaining -= 1
        optimizer = self._rng.choice(self._space.optimizers)
        sampled: dict[str, Any] = {"lr": sample(self._space.searched_lr(), self._rng)}
        for name in ("beta1", "beta2"):
            param = getattr(self._space, name)
            if param is not None:
                sampled[name] = sample(param, self._rng)
        for name, param in self._space.family_overrides(optimizer).items():
            sampled[f"{optimizer}.{name}"] = sample(param, self._rng)
        for name, setting in setting_axes(self._space, optimizer).items():
            sampled[name] = sample(setting, self._rng)
        return to_suggestion(self._space, optimizer, sampled)

    def restore(self, stored: list[StoredTrial]) -> None:
        """Draw again what was drawn already (the draws follow the seed)."""
        for _ in stored:
            self.suggest()
