"""A family's configurations as columns (one array per field, however many trials the sweep
has), and the arithmetic the optimizer report does on them: a configuration's objective as the
mean over its repeats, the best configuration, and its learning-rate basin (the unbroken run,
along lr within the best's group of listed settings, of configurations within the tolerance)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Configurations:
    """Configurations in trial-number order: the number and lr of each one's first repeat, its
    objective (the mean over its repeats with a finite objective), its group (its listed
    settings, ``report._listed``, as a small integer), whether it is the family's defaults,
    and its scale study size (None without a study)."""

    numbers: Ints
    lrs: Floats
    values: Floats
    groups: Ints
    defaults: Bools
    sizes: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.numbers)

    def take(self, keep: Bools) -> Configurations:
        """Those where ``keep`` is true."""
        sizes = self.sizes
        if sizes is not None:
            sizes = [size for size, kept in zip(sizes, keep, strict=True) if kept]
        return Configurations(
            self.numbers[keep],
            self.lrs[keep],
            self.values[keep],
            self.groups[keep],
            self.defaults[keep],
            sizes,
        )


def configurations(
    numbers: Ints,
    lrs: Floats,
    values: Floats,
    groups: Ints,
    defaults: Bools,
    *,
    repeats: int,
    sizes: list[Any] | None = None,
) -> Configurations:
    """One family's trials with a finite objective (any order) as its configurations: repeats
    ``number // repeats`` together, each taking its first repeat's number, lr, group, defaults
    flag and size, and the mean of their objectives."""
    order = np.argsort(numbers, kind="stable")
    numbers, values = numbers[order], values[order]
    keys, first, inverse = np.unique(numbers // repeats, return_index=True, return_inverse=True)
    means = (
        values
        if len(keys) == len(numbers)
        else np.bincount(inverse, weights=values) / np.bincount(inverse)
    )
    picked = order[first]
    return Configurations(
        numbers[first],
        lrs[picked],
        means,
        groups[picked],
        defaults[picked],
        None if sizes is None else [sizes[i] for i in picked],
    )


@dataclass(frozen=True)
class Basin:
    """A family's best configuration (its index in the columns) and its basin along lr."""

    best: int
    low: float
    high: float
    count: int
    open_below: bool
    open_above: bool
    highest_tried: float
    """The highest lr tried in the best's group."""

    @property
    def decades(self) -> float | None:
        """log10(high / low); None when the basin's low end is not positive."""
        return math.log10(self.high / self.low) if self.low > 0 else None


def best_and_basin(found: Configurations, *, maximize: bool, tolerance: float) -> Basin:
    """The best configuration (the first in number order among equals) and the unbroken run
    around it, in its group sorted by (lr, number), of configurations within ``tolerance`` x
    |best| of it; ``found`` must not be empty."""
    values = found.values
    best = int(np.argmax(values) if maximize else np.argmin(values))
    margin = tolerance * max(abs(float(values[best])), 1e-12)
    gaps = values[best] - values if maximize else values - values[best]
    alike = np.flatnonzero(found.groups == found.groups[best])
    by_lr = alike[np.lexsort((found.numbers[alike], found.lrs[alike]))]
    at = int(np.flatnonzero(by_lr == best)[0])
    far = gaps[by_lr] > margin
    below, above = np.flatnonzero(far[:at]), np.flatnonzero(far[at + 1 :])
    low = int(below[-1]) + 1 if below.size else 0
    high = at + int(above[0]) if above.size else len(by_lr) - 1
    return Basin(
        best=best,
        low=float(found.lrs[by_lr[low]]),
        high=float(found.lrs[by_lr[high]]),
        count=high - low + 1,
        open_below=low == 0,
        open_above=high == len(by_lr) - 1,
        highest_tried=float(found.lrs[by_lr[-1]]),
    )
