"""The sweep spec (the API's request body, YAML for the CLI), validated through the registry."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from optimizers import OPTIMIZERS, HyperparameterError, get_spec
from service.sweeps.models import SweepStatus


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Strict):
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


def _param_kind(value: Any) -> str | None:
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
        _param_kind,
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
        _param_kind,
        custom_error_type="parameter",
        custom_error_message="expected a fixed value, {'low', 'high'[, 'log']}, "
        "{'type': 'int', ...} or {'values': [...]}",
    ),
]
"""A per-family override: a fixed value or a searched hyperparameter."""


def _lr_kind(value: Any) -> str | None:
    return "auto" if value == "auto" else _param_kind(value)


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


class Space(_Strict):
    """Optimizer families, lr, the generic betas, and per-family overrides."""

    optimizers: list[str] = Field(min_length=1)
    lr: LrParam
    """A searched lr, or "auto": a learning-rate range test sets each family's bounds."""
    beta1: Param | None = None
    beta2: Param | None = None
    overrides: dict[str, dict[str, Override]] = Field(default_factory=dict)
    """Per family: fixed values or searched ranges for any of its own hyperparameters."""

    def searched_lr(self) -> Param:
        """lr as a searched parameter; ValueError while it is "auto" (not resolved yet)."""
        if isinstance(self.lr, str):
            raise ValueError("space.lr: 'auto' must be resolved by the range test first")
        return self.lr

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
    def _positive_lr(cls, lr: Param | str) -> Param | str:
        if isinstance(lr, str):
            return lr
        for value in param_bounds(lr):
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"lr must be finite and > 0, got {value!r}")
        if isinstance(lr, FloatRange) and lr.log_one_minus:
            raise ValueError("log_one_minus is for betas; use log for lr")
        return lr

    @field_validator("beta1", "beta2")
    @classmethod
    def _unit_betas(cls, beta: Param | None) -> Param | None:
        if beta is not None:
            for value in param_bounds(beta):
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"must be in [0, 1), got {value!r}")
        return beta

    @field_validator("overrides")
    @classmethod
    def _valid_overrides(
        cls, overrides: dict[str, dict[str, Override]], info: ValidationInfo
    ) -> dict[str, dict[str, Override]]:
        optimizers = info.data.get("optimizers")
        if optimizers is None:  # already reported as invalid
            return overrides
        for family, fields in overrides.items():
            if family not in optimizers:
                raise ValueError(
                    f"overrides.{family}: not one of the sweep's optimizers {optimizers}"
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
        return overrides


class WorkloadSpec(BaseModel):
    """Which workload to train and how long; the workload validates its own extra fields."""

    model_config = ConfigDict(extra="allow")

    name: str
    epochs: int = Field(ge=1, le=10_000)
    batch_size: int | None = Field(default=None, ge=1, le=65_536)
    """None: the workload's own default (64 for the digits workloads)."""

    def config(self) -> dict[str, Any]:
        """The workload config a worker builds from (unset fields take the workload's defaults)."""
        return self.model_dump(exclude_none=True)


Algorithm = Literal["grid", "random", "sobol", "tpe", "cmaes", "gp"]
ADAPTIVE: frozenset[str] = frozenset({"sobol", "tpe", "cmaes", "gp"})
"""Algorithms whose trials are asked for as the sweep runs (Optuna samplers), not up front."""


class AshaSpec(_Strict):
    """Asynchronous successive halving: at epochs grace_period x reduction_factor^k, only the
    top 1/reduction_factor of the trials that reached that epoch go on."""

    name: Literal["asha"]
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class HyperbandSpec(_Strict):
    """Hyperband: several ASHA brackets with different grace periods, trials spread over them."""

    name: Literal["hyperband"]
    min_epochs: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class MedianSpec(_Strict):
    """Median stopping: stop a trial whose best so far is worse than the median of the
    completed trials' values at the same epoch."""

    name: Literal["median"]
    warmup_epochs: int = Field(default=1, ge=0)
    """Never stop a trial before this many epochs."""
    min_trials: int = Field(default=5, ge=1)
    """Stop nothing until this many trials completed."""


class PbtSpec(_Strict):
    """Population-based training inside each pack: every ``interval`` epochs the bottom
    ``quantile`` of each family copies weights and optimizer state of its top ``quantile`` and
    perturbs lr and betas by ``perturbation`` (x 0.8 or 1.2 for 0.2)."""

    name: Literal["pbt"]
    interval: int = Field(default=4, ge=1)
    quantile: float = Field(default=0.25, gt=0, le=0.5)
    perturbation: float = Field(default=0.2, gt=0, lt=1)


PRUNERS = frozenset({"asha", "hyperband", "median"})
"""Schedulers that stop trials (decided in the inbox); pbt changes them instead."""


def _scheduler_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) else None
    return getattr(value, "name", None)


SchedulerSpec = Annotated[
    Annotated[AshaSpec, Tag("asha")]
    | Annotated[HyperbandSpec, Tag("hyperband")]
    | Annotated[MedianSpec, Tag("median")]
    | Annotated[PbtSpec, Tag("pbt")],
    Discriminator(
        _scheduler_name,
        custom_error_type="scheduler",
        custom_error_message="expected one of 'asha', 'hyperband', 'median', 'pbt' "
        "(a name, or an object with 'name' and its settings)",
    ),
]
"""An early-stopping scheduler."""


class SearchSpec(_Strict):
    """How trials are chosen, how many run at once, and which stop early."""

    algorithm: Algorithm = "random"
    num_trials: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0, lt=2**32)
    concurrency: int | None = Field(default=None, ge=1)
    """The most trials in flight at once (pack members count one each). None: no limit for
    grid and random; 4 per cluster slot for the adaptive algorithms."""
    scheduler: SchedulerSpec | None = None
    repeats: int = Field(default=1, ge=1, le=100)
    """Train each configuration this many times, each with its own seed; the leaderboard ranks
    configurations by their mean and shows the spread. ``num_trials`` counts configurations."""

    @property
    def pruner(self) -> AshaSpec | HyperbandSpec | MedianSpec | None:
        """The scheduler when it stops trials early (asha, hyperband, median), else None."""
        scheduler = self.scheduler
        return None if scheduler is None or isinstance(scheduler, PbtSpec) else scheduler

    @field_validator("scheduler", mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _needs_count(self) -> Self:
        if self.algorithm != "grid" and self.num_trials is None:
            raise ValueError(f"num_trials is required for {self.algorithm} search")
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
    pack: bool = True
    """Train compatible trials as packs (one batched model per task) when the workload can."""
    max_pack_size: int = Field(default=64, ge=1, le=4096)
    """The most trials one pack trains."""
    checkpoint_every: int = Field(default=1, ge=0, le=100_000)
    """Checkpoint each trial every this many epochs (and after its last); a retried attempt
    continues from the latest checkpoint. 0: never (a retry starts from scratch)."""


class SweepCreate(_Strict):
    """A sweep as submitted."""

    name: str = Field(min_length=1, max_length=200)
    workload: WorkloadSpec
    space: Space
    search: SearchSpec = SearchSpec(algorithm="random", num_trials=16)
    objective: ObjectiveSpec = ObjectiveSpec()
    resources: ResourcesSpec = ResourcesSpec()


class LrRange(BaseModel):
    """One family's learning-rate range test: the bounds it chose and the curve behind them."""

    low: float
    high: float
    lrs: list[float]
    losses: list[float]
    """The smoothed training loss at each lr."""


class SweepRead(BaseModel):
    """A sweep as the API shows it, with how many of its trials are in each status."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    status: SweepStatus
    num_trials: int
    trial_counts: dict[str, int]
    """Trials per status, every status present (0 where none)."""
    spec: dict[str, Any]
    lr_range: dict[str, LrRange] | None = None
    """With ``lr: auto``: per family, the lr bounds the range test chose and its curve."""
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class SweepPage(BaseModel):
    """A page of sweeps, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[SweepRead]
    next_cursor: str | None
