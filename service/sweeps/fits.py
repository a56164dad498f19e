"""What a sweep's settings need of its workload's run: batch sizes that fit the training set,
warm-ups that fit the run, and a length in steps where a per-step schedule needs one.

Only a worker knows the training set's size (it builds the workload), so the checks that need
it read the ``WorkloadReport`` a worker sent; the per-epoch ones need nothing but the spec.
"""

from __future__ import annotations

import math

from optisweep.service.errors import SpecError
from optisweep.service.sweeps.params import Choice, FloatRange, IntRange
from optisweep.service.sweeps.schedule_space import ScheduleSpace
from optisweep.service.sweeps.schemas import Setting, SweepCreate
from optisweep.workers.batches import batch_rows
from optisweep.workers.specs import WorkloadReport


def _values(setting: Setting) -> list[object]:
    """The values a setting can take, a range by its ends."""
    if isinstance(setting, Choice):
        return list(setting.values)
    if isinstance(setting, IntRange | FloatRange):
        return [setting.low, setting.high]
    return [] if setting is None else [setting]


def batch_sizes(spec: SweepCreate) -> dict[str, list[int]]:
    """The whole-number batch sizes a sweep searches (``space.batch_size``), by field."""
    found: dict[str, list[int]] = {}
    numbers = [
        v for v in _values(spec.space.batch_size) if isinstance(v, int) and not isinstance(v, bool)
    ]
    if numbers:
        found["space.batch_size"] = numbers
    return found


def _longest(schedule: ScheduleSpace) -> int:
    """The longest warm-up ``schedule`` can draw (0 without one)."""
    values = _values(schedule.warmup_steps)
    return max((int(v) for v in values if isinstance(v, int | float)), default=0)


def needs_train_size(spec: SweepCreate) -> bool:
    """Whether checking the sweep needs its training set's size (so a worker's report)."""
    per_step = any(s.per == "step" for s in spec.space.schedules().values())
    return bool(batch_sizes(spec)) or per_step


def _field(spec: SweepCreate, family: str, name: str) -> str:
    """Where ``family``'s schedule field ``name`` was set: its overrides, or space.schedule."""
    own = spec.space.overrides.get(family, {}).get("schedule")
    if isinstance(own, ScheduleSpace) and name in own.model_fields_set:
        return f"space.overrides.{family}.schedule.{name}"
    return f"space.schedule.{name}"


def check_batch_fits(spec: SweepCreate, report: WorkloadReport) -> None:
    """SpecError unless every batch size fits the workload's training set."""
    if report.train_size is None:
        return
    for field, values in batch_sizes(spec).items():
        for value in values:
            if value > report.train_size:
                raise SpecError(
                    f"{value} is larger than the training set ({report.train_size} examples); "
                    "'full' trains on all of it",
                    field=field,
                )


def check_schedule_fits(spec: SweepCreate, report: WorkloadReport | None = None) -> None:
    """SpecError unless every family's warm-up fits its run, and a per-step schedule that
    needs the run's length (a cosine, a step schedule without step_size) can know it."""
    for family, schedule in spec.space.schedules().items():
        _check_one(spec, family, schedule, report)


def _check_one(
    spec: SweepCreate, family: str, schedule: ScheduleSpace, report: WorkloadReport | None
) -> None:
    warmup, epochs = _longest(schedule), spec.workload.epochs
    field = _field(spec, family, "warmup_steps")
    if schedule.per == "epoch":
        if warmup > epochs:
            raise SpecError(
                f"a warm-up of {warmup} epochs is longer than the run of {epochs}",
                field=field,
            )
        return
    if report is None:
        return
    kinds = _values(schedule.kind) if isinstance(schedule.kind, Choice) else [schedule.kind]
    if report.kind == "function" and (
        "cosine" in kinds or ("step" in kinds and schedule.step_size is None)
    ):
        raise SpecError(
            "a per-step cosine, or step schedule without step_size, needs the run's length in "
            "steps, and a function workload's loop does not say it: count per epoch, or give "
            "step_size",
            field=_field(spec, family, "per"),
        )
    if report.train_size is None:
        return
    searched = [b for b in _values(spec.space.batch_size) if isinstance(b, int | str)]
    size = report.train_size
    steps, batch = min(
        ((math.ceil(size / batch_rows(b, size)), b) for b in searched or [report.batch_size or 64]),
        key=lambda pair: pair[0],
    )
    if warmup > epochs * steps:
        raise SpecError(
            f"a warm-up of {warmup} steps is longer than the run at batch size {batch}: "
            f"{epochs * steps} steps ({epochs} epochs x {steps})",
            field=field,
        )
