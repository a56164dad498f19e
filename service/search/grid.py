"""Grid search: every combination of the listed values, family by family."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from optisweep.optimizers import get_spec
from optisweep.service.search.base import (
    NonAdaptive,
    StoredTrial,
    Suggestion,
    setting_axes,
    suggestion_from,
    to_suggestion,
)
from optisweep.service.search.warm import EarlierTrial, ranked, sort_fitting
from optisweep.service.sweeps.schemas import Choice, Param, Space


class GridError(ValueError):
    """A space that cannot be enumerated, or whose grid is too large; names the field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _values(param: Param | float | int | bool | str, field: str) -> list[Any]:
    if isinstance(param, Choice):
        return list(param.values)
    if isinstance(param, float | int | bool | str):
        return [param]
    raise GridError(f"grid search needs {{'values': [...]}} for {field}, got a range", field=field)


def grid_axes(space: Space, optimizer: str) -> dict[str, list[Any]]:
    """The axes one family's grid spans: lr, the betas it has, and its overrides."""
    spec = get_spec(optimizer)
    overrides = space.family_overrides(optimizer)
    # a family's own lr (lr: auto's range, a learning-rate-free family's) replaces the shared
    axes = {} if "lr" in overrides else {"lr": _values(space.searched_lr(), "space.lr")}
    for name, target, param in (
        ("beta1", spec.beta1, space.beta1),
        ("beta2", spec.beta2, space.beta2),
    ):
        if target is not None and param is not None:
            axes[name] = _values(param, f"space.{name}")
    for name, override in overrides.items():
        axes[f"{optimizer}.{name}"] = _values(override, f"space.overrides.{optimizer}.{name}")
    for name, setting in setting_axes(space, optimizer).items():
        axes[name] = _values(setting, f"space.{name}")
    return axes


def _key(suggestion: Suggestion) -> str:
    return json.dumps(
        [suggestion.optimizer, suggestion.hyperparameters, suggestion.settings], sort_keys=True
    )


def grid_size(space: Space) -> int:
    """How many points the grid spans (an upper bound: repeated points are trained once)."""
    total = 0
    for optimizer in space.optimizers:
        size = 1
        for values in grid_axes(space, optimizer).values():
            size *= len(values)
        total += size
    return total


class GridSearcher(NonAdaptive):
    """Walks the grid in a fixed order: family, then lr, betas and overrides (the points earlier
    sweeps measured first, with ``search.warm_start``)."""

    def __init__(
        self,
        space: Space,
        *,
        max_trials: int,
        earlier: Sequence[EarlierTrial] = (),
        maximize: bool = True,
    ) -> None:
        """``earlier``: finished trials of earlier sweeps (``search.warm_start``); the grid
        points they measured go first, the best first."""
        size = grid_size(space)
        if size > max_trials:
            raise GridError(
                f"the grid has {size} trials, more than the maximum of {max_trials}",
                field="space",
            )
        points = (
            to_suggestion(space, optimizer, dict(zip(axes, combo, strict=True)))
            for optimizer in space.optimizers
            for axes in [grid_axes(space, optimizer)]
            for combo in itertools.product(*axes.values())
        )
        # A schedule parameter its kind does not read would repeat a point: each once.
        unique = {_key(point): point for point in points}
        self.warm = sort_fitting(space, earlier, shared=False)
        """The earlier trials that are points of this grid, and those left out."""
        drawn = {trial.origin: params for trial, params in self.warm.fitting}
        first: dict[str, Suggestion] = {}
        for trial in ranked([t for t, _ in self.warm.fitting], maximize=maximize):
            key = _key(suggestion_from(space, drawn[trial.origin], shared=False))
            if key in unique and key not in first:
                first[key] = replace(unique[key], origin=trial.origin)
        rest = [point for key, point in unique.items() if key not in first]
        self._pending: list[Suggestion] = [*first.values(), *rest]

    def suggest(self) -> Suggestion | None:
        """The next grid point, or None once every point was suggested."""
        return self._pending.pop(0) if self._pending else None

    def restore(self, stored: list[StoredTrial]) -> None:
        """Skip the points already suggested (the order is fixed)."""
        del self._pending[: len(stored)]
