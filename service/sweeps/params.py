"""The search-space parameters a sweep spec is made of: ranges, choices and fixed values."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from optisweep.optimizers.schemas import short_repr


class StrictModel(BaseModel):
    """A model that refuses fields it does not declare."""

    model_config = ConfigDict(extra="forbid")


Name = Annotated[str, Field(min_length=1, max_length=100)]
"""An optimizer family, a hyperparameter, a workload, a metric or a workload field."""
MAX_CHOICES = 10_000
"""The most values a choice lists (a grid of more trials is refused anyway)."""


def _choice_value(value: Any) -> Any:
    """A choice's value: a scalar, or a short list of them (a tuple hyperparameter: betas)."""
    items = value if isinstance(value, list) else [value]
    scalars = all(
        item is None
        or isinstance(item, bool | int | float)
        or (isinstance(item, str) and len(item) <= 100)
        for item in items
    )
    if len(items) > 16 or not scalars:
        raise ValueError(
            "a choice is a number, a bool, a string of at most 100 characters or null, "
            f"or a list of at most 16 of those; got {short_repr(value)}"
        )
    return value


class FloatRange(StrictModel):
    """A float in [low, high], sampled uniformly, log-uniformly (``log``), or, for betas,
    with 1 - beta log-uniform (``log_one_minus``: how betas near 1 are really explored)."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    log_one_minus: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low and high must be finite, got low={self.low}, high={self.high}")
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        if self.log and self.log_one_minus:
            raise ValueError("log and log_one_minus exclude each other")
        if self.log_one_minus and self.high >= 1:
            raise ValueError(f"log_one_minus needs high < 1, got high={self.high}")
        return self


class IntRange(StrictModel):
    """An integer in [low, high], uniform or (``log``) log-uniform."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.log and self.low < 1:
            raise ValueError(f"a log range needs low >= 1, got low={self.low}")
        return self


class Choice(StrictModel):
    """One of a list of values (a grid axis or a categorical)."""

    values: list[Annotated[Any, AfterValidator(_choice_value)]] = Field(
        min_length=1, max_length=MAX_CHOICES
    )


def param_kind(value: Any) -> str | None:
    """Which kind of parameter a value is, so a bad one gets one error, not one per kind."""
    if isinstance(value, BaseModel):
        return "choice" if isinstance(value, Choice) else getattr(value, "type", None)
    if isinstance(value, dict):
        if "values" in value:
            return "choice"
        return "int" if value.get("type") == "int" else "float"
    if isinstance(value, bool | int | float):
        return "fixed"
    return None


Param = Annotated[
    Annotated[FloatRange, Tag("float")]
    | Annotated[IntRange, Tag("int")]
    | Annotated[Choice, Tag("choice")],
    Discriminator(
        param_kind,
        custom_error_type="parameter",
        custom_error_message="expected {'low', 'high'[, 'log']}, {'type': 'int', ...} "
        "or {'values': [...]}",
    ),
]
"""A searched hyperparameter."""

Override = Annotated[
    Annotated[FloatRange, Tag("float")]
    | Annotated[IntRange, Tag("int")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[bool | int | float, Tag("fixed")],
    Discriminator(
        param_kind,
        custom_error_type="parameter",
        custom_error_message="expected a fixed value, {'low', 'high'[, 'log']}, "
        "{'type': 'int', ...} or {'values': [...]}",
    ),
]
"""A per-family override: a fixed value or a searched hyperparameter."""


def _setting_kind(value: Any) -> str | None:
    return "fixed" if value is None or value == "full" else param_kind(value)


Setting = Annotated[
    Annotated[FloatRange, Tag("float")]
    | Annotated[IntRange, Tag("int")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[int | float | Literal["full"] | None, Tag("fixed")],
    Discriminator(
        _setting_kind,
        custom_error_type="parameter",
        custom_error_message="expected a fixed value, {'low', 'high'[, 'log']}, "
        "{'type': 'int', ...} or {'values': [...]}",
    ),
]
"""A training setting searched like a hyperparameter (batch size, clipping): fixed or searched."""


def _lr_kind(value: Any) -> str | None:
    return "auto" if value == "auto" else param_kind(value)


LrParam = Annotated[
    Annotated[FloatRange, Tag("float")]
    | Annotated[IntRange, Tag("int")]
    | Annotated[Choice, Tag("choice")]
    | Annotated[Literal["auto"], Tag("auto")],
    Discriminator(
        _lr_kind,
        custom_error_type="parameter",
        custom_error_message="expected \"auto\", {'low', 'high'[, 'log']}, "
        "{'type': 'int', ...} or {'values': [...]}",
    ),
]
"""lr: a searched parameter, or "auto" (a learning-rate range test sets each family's range)."""


def param_bounds(param: Param) -> list[float]:
    """The extreme numeric values a parameter can take (both ends of a range, or every value)."""
    if isinstance(param, Choice):
        return [v for v in param.values if isinstance(v, int | float) and not isinstance(v, bool)]
    return [float(param.low), float(param.high)]
