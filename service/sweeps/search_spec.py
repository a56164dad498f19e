"""How a sweep searches: its algorithm, early-stopping scheduler, repeats and objectives."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from optisweep.service.sweeps.params import Name, StrictModel

Algorithm = Literal["grid", "random", "sobol", "tpe", "cmaes", "gp", "nsga2"]
ADAPTIVE: frozenset[str] = frozenset({"sobol", "tpe", "cmaes", "gp", "nsga2"})
"""Algorithms whose trials are asked for as the sweep runs (Optuna samplers), not up front."""
MULTI_OBJECTIVE: frozenset[str] = frozenset({"grid", "random", "sobol", "tpe", "gp", "nsga2"})
"""Algorithms that search several objectives: Optuna's TPE, GP and NSGA-II samplers model them
all; grid, random and Sobol points never read the values. CMA-ES has one objective."""


class AshaSpec(StrictModel):
    """Asynchronous successive halving: at epochs grace_period x reduction_factor^k, only the
    top 1/reduction_factor of the trials that reached that epoch go on."""

    name: Literal["asha"]
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class HyperbandSpec(StrictModel):
    """Hyperband: several ASHA brackets with different grace periods, trials spread over them."""

    name: Literal["hyperband"]
    min_epochs: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)


class MedianSpec(StrictModel):
    """Median stopping: stop a trial whose best so far is worse than the median of the
    completed trials' values at the same epoch."""

    name: Literal["median"]
    warmup_epochs: int = Field(default=1, ge=0)
    """Never stop a trial before this many epochs."""
    min_trials: int = Field(default=5, ge=1)
    """Stop nothing until this many trials completed."""


class PbtSpec(StrictModel):
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


MAX_WARM_SWEEPS = 16
"""The most earlier sweeps one sweep warm-starts from."""


class WarmStartSpec(StrictModel):
    """Earlier sweeps whose finished trials the searcher learns from before its first trial.
    Their best configurations that fit the space are trained again first (a quarter of
    ``num_trials``, at least one) under random and adaptive search; an adaptive searcher
    (Optuna's) is also told every fitting trial; a grid puts the points they measured first,
    the best first. Trials outside the space, or on another workload, are counted in the
    report and not used."""

    sweeps: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_WARM_SWEEPS)
    """The earlier sweeps' ids, of the same project and objective."""


class SearchSpec(StrictModel):
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
    defaults_first: bool = False
    """Before the searcher's trials, train every family once (per repeat) at its published
    defaults (the optimizer registry's hyperparameters; the workload's batch size, no
    clipping, a constant lr), so the report shows how far tuning moved each family beyond
    them. These trials come beyond ``num_trials``."""
    warm_start: WarmStartSpec | None = None
    """Learn from earlier sweeps' finished trials first (``{sweeps: [ids]}``)."""

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


MAX_OBJECTIVES = 3
"""The most objectives one sweep optimises at once."""


class Objective(StrictModel):
    """One metric a sweep optimises, and its direction."""

    metric: Name
    mode: Literal["max", "min"]


Summary = Literal["last", "best"]
"""A sweep's summary rule: a trial's objective is its last epoch's value, or its best."""


class ObjectiveSpec(StrictModel):
    """The metric that ranks trials, and its direction; ``also`` holds further objectives.

    Written as one ``{metric, mode}`` or as a list of 2 or 3 of them: the list's first is this
    spec's own ``metric`` and ``mode`` (the primary objective, which ranks each family's
    leaderboard and drives early stopping), the others go to ``also``."""

    metric: Name = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    also: list[Objective] = Field(default_factory=list, max_length=MAX_OBJECTIVES - 1)
    """The objectives after the primary, for a multi-objective search (a Pareto front)."""
    summary: Summary = "last"
    """Which epoch's value is a trial's objective, everywhere one is shown or compared
    (leaderboard, report, comparisons, CLI, client, CSV, searchers, dashboard): its last
    epoch (the default, Ray Tune's scope "last") or its best epoch (scope "all", W&B's
    summary "best")."""

    @property
    def objectives(self) -> list[Objective]:
        """Every objective, the primary first."""
        return [Objective(metric=self.metric, mode=self.mode), *self.also]

    @model_validator(mode="before")
    @classmethod
    def _list_form(cls, value: Any) -> Any:
        """A list of objectives as the primary and ``also``, each item's error named by its
        index (``objective.1.mode``)."""
        if not isinstance(value, list):
            return value
        if not 1 <= len(value) <= MAX_OBJECTIVES:
            raise ValueError(
                f"a list of 1 to {MAX_OBJECTIVES} objectives ({{metric, mode}} each), "
                f"got {len(value)}"
            )
        items = []
        for index, item in enumerate(value):
            try:
                items.append(Objective.model_validate(item))
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(part) for part in ("objective", index, *error["loc"]))
                raise ValueError(f"{where}: {error['msg']}") from None
        return {"metric": items[0].metric, "mode": items[0].mode, "also": items[1:]}

    @model_validator(mode="after")
    def _distinct_metrics(self) -> Self:
        seen = [self.metric]
        for index, objective in enumerate(self.also, start=1):
            if objective.metric in seen:
                raise ValueError(
                    f"objective.{index}.metric: {objective.metric!r} is already objective "
                    f"{seen.index(objective.metric)}; each objective is a different metric"
                )
            seen.append(objective.metric)
        return self

    @model_serializer(mode="wrap")
    def _single_as_before(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without further objectives, no ``also``: a stored single-objective spec reads as
        it always did."""
        data: dict[str, Any] = handler(self)
        if not self.also:
            data.pop("also", None)
        return data
