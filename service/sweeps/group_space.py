"""A sweep's parameter-group rules: which parameters (``select``, as a trial's rule has it) and
their weight decay and lr multiplier, each fixed or searched like a hyperparameter. A trial's
drawn values sit in its settings as ``param_groups.<i>.<field>``; ``rules`` turns them into the
concrete rules (``optimizers.ParamGroup``) a trial trains with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import Field, ValidationError, model_validator

from optisweep.optimizers import ParamGroup
from optisweep.optimizers.param_groups import Selector, with_no_decay
from optisweep.service.sweeps.params import (
    Choice,
    FloatRange,
    IntRange,
    Override,
    StrictModel,
    param_bounds,
)

GROUP_FIELDS = ("weight_decay", "lr_multiplier")
"""What a rule sets for the parameters it selects."""


def group_key(index: int, field: str) -> str:
    """The settings key of rule ``index``'s searched ``field``: ``param_groups.0.weight_decay``."""
    return f"param_groups.{index}.{field}"


class GroupSpace(StrictModel):
    """A rule: the parameters any of ``select`` matches, and their ``weight_decay`` and/or
    ``lr_multiplier``, each a value or searched (``{values: [...]}``, ``{low, high, log}``)."""

    select: list[Selector] = Field(min_length=1, max_length=16)
    weight_decay: Override | None = None
    """This group's weight decay instead of the trial's (0: none)."""
    lr_multiplier: Override | None = None
    """This group's lr is the trial's (scheduled) lr times this."""

    @model_validator(mode="after")
    def _valid_values(self) -> Self:
        if self.weight_decay is None and self.lr_multiplier is None:
            raise ValueError("a parameter group sets weight_decay, lr_multiplier or both")
        for field in GROUP_FIELDS:
            value = getattr(self, field)
            if isinstance(value, IntRange):
                raise ValueError(f"{field}: a float, {{'low', 'high'}} or {{'values': [...]}}")
            probes = param_bounds(value) if self.searched(field) else [value]
            for probe in probes if value is not None else []:
                try:  # every value it can take is one a trial's rule accepts
                    ParamGroup(select=self.select, **{field: probe})
                except ValidationError as exc:
                    message = exc.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ValueError(f"{field}: {message}") from None
        return self

    def searched(self, field: str) -> bool:
        """Whether ``field`` is searched (a range or values) rather than fixed."""
        return isinstance(getattr(self, field), FloatRange | Choice)

    def rule(self, drawn: Mapping[str, Any]) -> ParamGroup:
        """The concrete rule, its searched fields at the values in ``drawn`` (by field)."""
        values = {
            field: drawn[field] if self.searched(field) else getattr(self, field)
            for field in GROUP_FIELDS
        }
        return ParamGroup(select=self.select, **values)


def group_axes(groups: Sequence[GroupSpace]) -> dict[str, Override]:
    """The searched group values as setting axes, by settings key."""
    return {
        group_key(index, field): getattr(group, field)
        for index, group in enumerate(groups)
        for field in GROUP_FIELDS
        if group.searched(field)
    }


def rules(
    groups: Sequence[GroupSpace], *, no_decay: bool, settings: Mapping[str, Any] | None = None
) -> list[ParamGroup]:
    """The rules a trial trains with: each group at its drawn values (``settings``, a trial's;
    without one, a searched field at its first bound: enough for selecting), then the
    ``no_decay`` rule when it is on."""
    drawn = settings or {}
    concrete = []
    for index, group in enumerate(groups):
        values = {
            field: drawn.get(group_key(index, field), _first(getattr(group, field)))
            for field in GROUP_FIELDS
            if group.searched(field)
        }
        concrete.append(group.rule(values))
    return with_no_decay(concrete) if no_decay else concrete


def _first(value: FloatRange | Choice) -> Any:
    """A value a searched field can take: its low end, or its first listed value."""
    return value.values[0] if isinstance(value, Choice) else value.low
