"""The learning-rate schedule a sweep searches (``space.schedule``), and the per-family
override type that may hold one (``space.overrides.<family>.schedule``)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Discriminator,
    SerializerFunctionWrapHandler,
    Tag,
    field_validator,
    model_serializer,
    model_validator,
)

from optisweep.optimizers.schemas import short_repr
from optisweep.service.sweeps.params import (
    Choice,
    FloatRange,
    IntRange,
    Setting,
    StrictModel,
    param_kind,
)

SCHEDULE_KINDS = ("constant", "step", "exponential", "cosine")
SCHEDULE_PARAMETERS = {
    "constant": ("warmup_steps",),
    "step": ("warmup_steps", "gamma", "step_size"),
    "exponential": ("warmup_steps", "gamma"),
    "cosine": ("warmup_steps", "min_factor"),
}
"""Which parameters each schedule kind reads."""
SCHEDULE_FIELDS = ("kind", "warmup_steps", "gamma", "step_size", "min_factor")
"""A schedule space's fields that trials draw (``per`` is the sweep's)."""


class ScheduleSpace(StrictModel):
    """Learning-rate decay per trial: the kind and its parameters, each fixed or searched
    (``{values: [...]}`` or a range), counted in epochs or optimizer steps (``per``). Every
    kind reads warmup_steps (a linear warm-up in front, default 0); step reads gamma (default
    0.1) and step_size (default a third of the run after the warm-up); exponential reads
    gamma (default 0.9); cosine decays to min_factor (default 0) of the lr over the run
    after the warm-up. A kind ignores the parameters it does not read."""

    kind: Choice | str = "constant"
    """One of ``SCHEDULE_KINDS``, or ``{values: [...]}`` of them."""
    per: Literal["epoch", "step"] = "epoch"
    """What the schedule counts (warmup_steps and step_size too): epochs or optimizer steps."""
    warmup_steps: Setting = None
    """Counts (as ``per``) of linear warm-up from lr/(n+1) to the lr, before the decay."""
    gamma: Setting = None
    step_size: Setting = None
    min_factor: Setting = None

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the fields given: a stored family override stays a change of the fields it
        names (its defaults would otherwise replace the shared schedule's values)."""
        data: dict[str, Any] = handler(self)
        return {name: value for name, value in data.items() if name in self.model_fields_set}

    @field_validator("warmup_steps", "step_size", mode="before")
    @classmethod
    def _whole_ranges(cls, value: Any) -> Any:
        """Counts are whole numbers: a range of them is an int range without saying so."""
        if isinstance(value, dict) and "values" not in value and "type" not in value:
            return {**value, "type": "int"}
        return value

    @field_validator("kind")
    @classmethod
    def _known_kinds(cls, kind: Any) -> Any:
        for value in kind.values if isinstance(kind, Choice) else [kind]:
            if value not in SCHEDULE_KINDS:
                valid = ", ".join(SCHEDULE_KINDS)
                raise ValueError(f"unknown schedule kind {short_repr(value)} (valid: {valid})")
        return kind

    @model_validator(mode="after")
    def _parameters_in_range(self) -> Self:
        checks = {
            "gamma": lambda v: isinstance(v, int | float) and math.isfinite(v) and v > 0,
            "step_size": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
            "warmup_steps": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "min_factor": lambda v: isinstance(v, int | float) and 0 <= v <= 1,
        }
        for name, valid in checks.items():
            value = getattr(self, name)
            values = (
                value.values
                if isinstance(value, Choice)
                else [value.low, value.high]
                if isinstance(value, FloatRange | IntRange)
                else [value]
            )
            for one in values:
                if one is not None and not valid(one):
                    raise ValueError(f"{name}: out of range, got {short_repr(one)}")
        return self


def _family_override_kind(value: Any) -> str | None:
    """A schedule (it has a schedule's field) or a hyperparameter's kind (see ``Override``)."""
    fields = {*SCHEDULE_FIELDS, "per"}
    if isinstance(value, ScheduleSpace) or (isinstance(value, dict) and fields & set(value)):
        return "schedule"
    return param_kind(value)


FamilyOverride = Annotated[
    Annotated[FloatRange, Tag("float")]
    | Annotated[IntRange, Tag("int")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[bool | int | float, Tag("fixed")]
    | Annotated[ScheduleSpace, Tag("schedule")],
    Discriminator(
        _family_override_kind,
        custom_error_type="parameter",
        custom_error_message="expected a fixed value, {'low', 'high'[, 'log']}, "
        "{'type': 'int', ...}, {'values': [...]} or (as schedule) {'kind': ...}",
    ),
]
"""One entry of a family's overrides: a hyperparameter (as ``Override``), or under
``schedule`` the family's own schedule space, whose fields replace the shared one's."""
