"""Per-member learning-rate schedules, evaluated as multipliers of each member's base lr.

Each schedule's closed form matches the torch.optim.lr_scheduler class named in its docstring,
with the schedule counter playing the role of the scheduler's ``last_epoch``. Any of them may
have a linear warm-up in front (``warmup`` counts: the multiplier is (t + 1) / (warmup + 1)
until then, and the schedule starts from its own t = 0 at t = warmup), and counts either
epochs or optimizer steps (``per``). A cosine's ``t_max`` and a step schedule's ``step_size``
may be left to the length of the run (``resolve_schedule``), which a worker knows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from optisweep.optimizers.schemas import ClosedUnitFloat, PositiveFloat

Per = Literal["epoch", "step"]
"""What a schedule's counter counts: epochs, or optimizer steps."""


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup: int = Field(default=0, ge=0)
    """Counts of linear warm-up before the schedule starts (0: none)."""
    per: Per = "epoch"
    """Whether the counter advances once per epoch or once per optimizer step."""


class ConstantSchedule(_Schedule):
    """A constant multiplier of 1 (no schedule)."""

    kind: Literal["constant"] = "constant"


class StepSchedule(_Schedule):
    """gamma ** (t // step_size), as StepLR."""

    kind: Literal["step"] = "step"
    step_size: int | None = Field(default=None, ge=1)
    """None: a third of the run after the warm-up (``resolve_schedule``)."""
    gamma: PositiveFloat = 0.1


class ExponentialSchedule(_Schedule):
    """gamma ** t, as ExponentialLR."""

    kind: Literal["exponential"] = "exponential"
    gamma: PositiveFloat


class CosineSchedule(_Schedule):
    """min_factor + (1 - min_factor) (1 + cos(pi t / t_max)) / 2, as CosineAnnealingLR."""

    kind: Literal["cosine"] = "cosine"
    t_max: int | None = Field(default=None, ge=1)
    """None: the run after the warm-up (``resolve_schedule``)."""
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


S = TypeVar("S", bound=_Schedule)


def resolve_schedule(schedule: S, total: int) -> S:
    """``schedule`` with what it leaves to the run's length filled in: ``total`` counts
    (epochs or optimizer steps, as ``schedule.per``) in the whole run."""
    rest = max(1, total - schedule.warmup)
    match schedule:
        case StepSchedule(step_size=None):
            return schedule.model_copy(update={"step_size": max(1, rest // 3)})
        case CosineSchedule(t_max=None):
            return schedule.model_copy(update={"t_max": rest})
    return schedule


def needs_run_length(schedule: _Schedule) -> bool:
    """Whether ``schedule`` leaves a parameter to the run's length (``resolve_schedule``)."""
    return resolve_schedule(schedule, 1) != schedule


def _row(schedule: _Schedule) -> tuple[int, float, float]:
    """(kind id, a, b): the two numbers each closed form in ScheduleTable reads."""
    if needs_run_length(schedule):
        name = type(schedule).__name__
        raise ValueError(f"schedule: {name} needs the run's length (resolve_schedule)")
    match schedule:
        case StepSchedule():
            return 1, schedule.gamma, float(schedule.step_size or 1)
        case ExponentialSchedule():
            return 2, schedule.gamma, 1.0
        case CosineSchedule():
            return 3, schedule.min_factor, float(schedule.t_max or 1)
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
        self.warmup = torch.tensor([s.warmup for s in schedules], dtype=torch.float64)
        self.per_step = torch.tensor([s.per == "step" for s in schedules], dtype=torch.bool)
        """[K] bool: the members whose counters count optimizer steps (the rest: epochs)."""

    def multipliers(self, t: Tensor) -> Tensor:
        """Each member's lr multiplier at its own schedule counter t ([K] int64)."""
        counter = t.to(torch.float64)
        warming = counter < self.warmup
        t = torch.clamp(counter - self.warmup, min=0)
        a, b = self.a, self.b
        step = a ** torch.floor(t / b)
        exponential = a**t
        cosine = a + (1 - a) * (1 + torch.cos(math.pi * t / b)) / 2
        warmup = a + (1 - a) * torch.clamp(t, max=b) / b
        out = torch.ones_like(t)
        for kind_id, values in ((1, step), (2, exponential), (3, cosine), (4, warmup)):
            out = torch.where(self.kind == kind_id, values, out)
        return torch.where(warming, (counter + 1) / (self.warmup + 1), out)


def lr_multiplier(schedule: _Schedule, t: int) -> float:
    """One schedule's lr multiplier at counter ``t``: the same closed form the population uses."""
    return float(ScheduleTable([schedule]).multipliers(torch.tensor([t]))[0])


def lr_lambda(schedule: _Schedule, counts: int = 1024) -> Callable[[int], float]:
    """``lr_multiplier`` for a LambdaLR, computed in blocks (the first ``counts + 1`` values
    at once, then doubling): a per-step schedule asks for one every optimizer step."""
    table = ScheduleTable([schedule])
    values: list[float] = []

    def multiplier(t: int) -> float:
        if t >= len(values):
            end = max(2 * len(values), t + 1, counts + 1)
            values.extend(table.multipliers(torch.arange(len(values), end)).tolist())
        return values[t]

    return multiplier
