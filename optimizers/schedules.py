"""Per-member learning-rate schedules, evaluated as multipliers of each member's base lr.

Each schedule's closed form matches the torch.optim.lr_scheduler class named in its docstring,
with the schedule counter playing the role of the scheduler's ``last_epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from optimizers.schemas import ClosedUnitFloat, PositiveFloat


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConstantSchedule(_Schedule):
    """A constant multiplier of 1 (no schedule)."""

    kind: Literal["constant"] = "constant"


class StepSchedule(_Schedule):
    """gamma ** (t // step_size), as StepLR."""

    kind: Literal["step"] = "step"
    step_size: int = Field(ge=1)
    gamma: PositiveFloat = 0.1


class ExponentialSchedule(_Schedule):
    """gamma ** t, as ExponentialLR."""

    kind: Literal["exponential"] = "exponential"
    gamma: PositiveFloat


class CosineSchedule(_Schedule):
    """min_factor + (1 - min_factor) (1 + cos(pi t / t_max)) / 2, as CosineAnnealingLR."""

    kind: Literal["cosine"] = "cosine"
    t_max: int = Field(ge=1)
    min_factor: ClosedUnitFloat = 0.0


class WarmupSchedule(_Schedule):
    """Linear warm-up from start_factor to 1 over total_iters, as LinearLR."""

    kind: Literal["warmup"] = "warmup"
    start_factor: ClosedUnitFloat = 1.0 / 3
    total_iters: int = Field(ge=1, default=5)


Schedule = Annotated[
    ConstantSchedule | StepSchedule | ExponentialSchedule | CosineSchedule | WarmupSchedule,
    Field(discriminator="kind"),
]


def _row(schedule: _Schedule) -> tuple[int, float, float]:
    """(kind id, a, b): the two numbers each closed form in ScheduleTable reads."""
    match schedule:
        case StepSchedule():
            return 1, schedule.gamma, float(schedule.step_size)
        case ExponentialSchedule():
            return 2, schedule.gamma, 1.0
        case CosineSchedule():
            return 3, schedule.min_factor, float(schedule.t_max)
        case WarmupSchedule():
            return 4, schedule.start_factor, float(schedule.total_iters)
    return 0, 1.0, 1.0


class ScheduleTable:
    """The schedules of K members, evaluated together: multipliers(t) -> [K] float64."""

    def __init__(self, schedules: Sequence[_Schedule]) -> None:
        rows = [_row(schedule) for schedule in schedules]
        self.kind = torch.tensor([row[0] for row in rows], dtype=torch.int64)
        self.a = torch.tensor([row[1] for row in rows], dtype=torch.float64)
        self.b = torch.tensor([row[2] for row in rows], dtype=torch.float64)

    def multipliers(self, t: Tensor) -> Tensor:
        """Each member's lr multiplier at its own schedule counter t ([K] int64)."""
        t = t.to(torch.float64)
        a, b = self.a, self.b
        step = a ** torch.floor(t / b)
        exponential = a**t
        cosine = a + (1 - a) * (1 + torch.cos(math.pi * t / b)) / 2
        warmup = a + (1 - a) * torch.clamp(t, max=b) / b
        out = torch.ones_like(t)
        for kind_id, values in ((1, step), (2, exponential), (3, cosine), (4, warmup)):
            out = torch.where(self.kind == kind_id, values, out)
        return out


def lr_multiplier(schedule: _Schedule, t: int) -> float:
    """One schedule's lr multiplier at counter ``t``: the same closed form the population uses."""
    return float(ScheduleTable([schedule]).multipliers(torch.tensor([t]))[0])
