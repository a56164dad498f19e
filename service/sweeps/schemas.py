"""The sweep spec (the API's request body, YAML for the CLI), validated through the registry."""

from __future__ import annotations

import math
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from optimizers import OPTIMIZERS, HyperparameterError, get_spec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Strict):
    """A float in [low, high], sampled uniformly or (log=true) log-uniformly."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError(f"low and high must be finite, got low={self.low}, high={self.high}")
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got low={self.low}")
        return self


class IntRange(_Strict):
    """An integer in [low, high]."""

    type: Literal["int"]
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, got low={self.low}, high={self.high}")
        return self


class Choice(_Strict):
    """One of a list of values (a grid axis or a categorical)."""

    values: list[Any] = Field(min_length=1)


Param = FloatRange | IntRange | Choice
"""A searched hyperparameter."""


def param_bounds(param: Param) -> list[float]:
    """The extreme numeric values a parameter can take (both ends of a range, or every value)."""
    if isinstance(param, Choice):
        return [v for v in param.values if isinstance(v, int | float) and not isinstance(v, bool)]
    return [float(param.low), float(param.high)]


class Space(_Strict):
    """Optimizer families, lr, the generic betas, and per-family overrides."""

    optimizers: list[str] = Field(min_length=1)
    lr: Param
    beta1: Param | None = None
    beta2: Param | None = None
    overrides: dict[str, dict[str, Param | float | int | bool]] = Field(default_factory=dict)
    """Per family: fixed values or searched ranges for any of its own hyperparameters."""

    @field_validator("optimizers")
    @classmethod
    def _known_optimizers(cls, names: list[str]) -> list[str]:
        for name in names:
            get_spec(name)  # raises, listing the valid names
        if len(set(names)) != len(names):
            raise ValueError(f"optimizers must not repeat, got {names}")
        return names

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, lr: Param) -> Param:
        for value in param_bounds(lr):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"lr must be finite and > 0, got {value!r}")
        return lr

    @field_validator("beta1", "beta2")
    @classmethod
    def _unit_betas(cls, beta: Param | None) -> Param | None:
        if beta is not None:
            for value in param_bounds(beta):
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"must be in [0, 1), got {value!r}")
        return beta

    @model_validator(mode="after")
    def _valid_overrides(self) -> Self:
        for family, fields in self.overrides.items():
            if family not in self.optimizers:
                raise ValueError(
                    f"overrides.{family}: not one of the sweep's optimizers {self.optimizers}"
                )
            spec = OPTIMIZERS[family]
            for name, value in fields.items():
                if name not in spec.hyperparameters:
                    valid = ", ".join(spec.hyperparameters)
                    raise ValueError(
                        f"overrides.{family}.{name}: unknown hyperparameter (valid: {valid})"
                    )
                probes = (
                    param_bounds(value)
                    if isinstance(value, FloatRange | IntRange | Choice)
                    else [value]
                )
                for probe in probes:
                    try:
                        spec.validate({name: probe})
                    except HyperparameterError as exc:
                        raise ValueError(f"overrides.{family}.{name}: {exc}") from None
        return self


class WorkloadSpec(BaseModel):
    """Which workload to train and how long; the workload validates its own extra fields."""

    model_config = ConfigDict(extra="allow")

    name: str
    epochs: int = Field(ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)


class SearchSpec(_Strict):
    """How trials are chosen."""

    algorithm: Literal["grid", "random"] = "random"
    num_trials: int | None = Field(default=None, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _random_needs_count(self) -> Self:
        if self.algorithm == "random" and self.num_trials is None:
            raise ValueError("num_trials is required for random search")
        return self


class ObjectiveSpec(_Strict):
    """The metric that ranks trials, and its direction."""

    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"


class ResourcesSpec(_Strict):
    """What each trial asks Ray for."""

    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)
    max_failures: int = Field(default=2, ge=0, le=100)


class SweepCreate(_Strict):
    """A sweep as submitted."""

    name: str = Field(min_length=1, max_length=200)
    workload: WorkloadSpec
    space: Space
    search: SearchSpec = SearchSpec(algorithm="random", num_trials=16)
    objective: ObjectiveSpec = ObjectiveSpec()
    resources: ResourcesSpec = ResourcesSpec()
