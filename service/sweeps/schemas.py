"""The sweep spec (the API's request body, YAML for the CLI), validated through the registry."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from optisweep.optimizers import OPTIMIZERS, HyperparameterError, ParamGroup, get_spec
from optisweep.optimizers.members import MAX_PARAM_GROUPS
from optisweep.optimizers.schemas import short_repr
from optisweep.service.sweeps.group_space import GroupSpace, rules
from optisweep.service.sweeps.models import SweepStatus
from optisweep.service.sweeps.params import (
    Choice,
    FloatRange,
    IntRange,
    LrParam,
    Name,
    Override,
    Param,
    Setting,
    StrictModel,
    param_bounds,
)
from optisweep.service.sweeps.scale_spec import ScaleSpec
from optisweep.service.sweeps.schedule_space import FamilyOverride, ScheduleSpace
from optisweep.service.sweeps.search_spec import ObjectiveSpec, SearchSpec
from optisweep.service.sweeps.workload import CodeSpec, WorkloadSpec

MAX_OVERRIDES = 64
"""The most hyperparameters one family overrides, and the most extra workload fields."""


def _check_override(family: str, name: str, value: Override) -> None:
    """HyperparameterError unless every value ``value`` can take (both ends of a range, or
    each listed value) is valid for ``family``'s hyperparameter ``name``."""
    searched = isinstance(value, FloatRange | IntRange | Choice)
    for probe in param_bounds(value) if searched else [value]:  # type: ignore[arg-type]
        OPTIMIZERS[family].validate({name: probe})


class Space(StrictModel):
    """Optimizer families, lr, the generic betas, and per-family overrides."""

    optimizers: list[Name] = Field(min_length=1, max_length=len(OPTIMIZERS))
    lr: LrParam
    """A searched lr, or "auto": a learning-rate range test sets each family's bounds."""
    beta1: Param | None = None
    beta2: Param | None = None
    overrides: dict[
        Name, Annotated[dict[Name, FamilyOverride], Field(max_length=MAX_OVERRIDES)]
    ] = Field(default_factory=dict, max_length=len(OPTIMIZERS))
    """Per family: fixed values or searched ranges for any of its own hyperparameters, and
    under ``schedule`` the fields of its lr schedule that differ from ``space.schedule``."""
    hyperparameters: dict[Name, Override] = Field(default_factory=dict, max_length=MAX_OVERRIDES)
    """Fixed values or searched ranges for hyperparameters several families have
    (``weight_decay``, ``eps``, ``momentum``, ``nesterov``, ``amsgrad``, ``centered``...):
    each applies to every family of the sweep that has the field (the registry knows which);
    a family's own ``overrides`` win."""
    batch_size: Setting = None
    """Batch sizes to search: values (``full``: the whole training set each step, gradient
    descent; 1: pure stochastic gradient descent) or an int range (``log`` allowed); None:
    the workload's ``batch_size``. Packs group trials by batch size."""
    clip_norm: Setting = None
    """Gradient clipping by global norm, per trial: a value, values (null: no clipping) or a
    range (``log`` allowed); None: no clipping."""
    schedule: ScheduleSpace | None = None
    """Learning-rate decay per trial (kinds and parameters searched); None: a constant lr."""
    param_groups: list[GroupSpace] = Field(default_factory=list, max_length=MAX_PARAM_GROUPS)
    """Rules that give some of the model's parameters their own weight decay or lr multiplier
    (``{select: [bias, norm, {module: Embedding}, {name: '^head\\.'}, {ndim: 1}],
    weight_decay: 0.0, lr_multiplier: {values: [0.1, 1.0]}}``), each fixed or searched like a
    hyperparameter; the first rule that selects a parameter wins. Every trial has them."""
    no_decay: bool = False
    """Opt-in: biases, normalisation layers and embeddings get no weight decay (a rule of
    ``param_groups`` that selects one of them first still wins)."""

    def member_param_groups(self, settings: dict[str, Any] | None = None) -> list[ParamGroup]:
        """The parameter groups a trial trains with (at its drawn ``settings``):
        ``param_groups``, then the ``no_decay`` rule when it is on."""
        return rules(self.param_groups, no_decay=self.no_decay, settings=settings)

    def family_overrides(self, optimizer: str) -> dict[str, Override]:
        """What ``optimizer``'s trials fix or search beyond the shared lr and the betas: the
        shared ``hyperparameters`` it has, then its own ``overrides``, which win; a
        learning-rate-free family (Prodigy) its default lr in place of the shared one."""
        spec = OPTIMIZERS[optimizer]
        fields = spec.hyperparameters
        shared = {name: p for name, p in self.hyperparameters.items() if name in fields}
        if spec.learning_rate_free:
            shared["lr"] = spec.params_model.model_fields["lr"].default
        own = {
            name: value
            for name, value in self.overrides.get(optimizer, {}).items()
            if not isinstance(value, ScheduleSpace)
        }
        return {**shared, **own}

    def lr_tuned(self) -> list[str]:
        """The families whose lr the shared ``lr`` (or its range test) sets: all but the
        learning-rate-free ones (Prodigy)."""
        return [name for name in self.optimizers if not OPTIMIZERS[name].learning_rate_free]

    def schedule_for(self, optimizer: str) -> ScheduleSpace | None:
        """``optimizer``'s schedule space: ``schedule``, with the fields its overrides set."""
        own = self.overrides.get(optimizer, {}).get("schedule")
        if not isinstance(own, ScheduleSpace):
            return self.schedule
        if self.schedule is None:
            return own
        changed = {name: getattr(own, name) for name in own.model_fields_set}
        return self.schedule.model_copy(update=changed)

    def schedules(self) -> dict[str, ScheduleSpace]:
        """Each family's schedule space, for the families that have one."""
        found = {name: self.schedule_for(name) for name in self.optimizers}
        return {name: schedule for name, schedule in found.items() if schedule is not None}

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
                raise ValueError(f"lr must be finite and > 0, got {short_repr(value)}")
        if isinstance(lr, FloatRange) and lr.log_one_minus:
            raise ValueError("log_one_minus is for betas; use log for lr")
        return lr

    @field_validator("batch_size")
    @classmethod
    def _batch_sizes(cls, batch_size: Any) -> Any:
        values = batch_size.values if isinstance(batch_size, Choice) else [batch_size]
        if isinstance(batch_size, FloatRange):
            raise ValueError("batch sizes are whole numbers: use {'type': 'int', ...}")
        if isinstance(batch_size, IntRange):
            values = [batch_size.low, batch_size.high]
        for value in values:
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not (value == "full" or value is None or (whole and 1 <= value <= 65_536)):
                raise ValueError(
                    f"a batch size is an int in [1, 65536] or 'full', got {short_repr(value)}"
                )
        return batch_size

    @field_validator("clip_norm")
    @classmethod
    def _clip_norms(cls, clip_norm: Any) -> Any:
        if isinstance(clip_norm, IntRange) or clip_norm == "full":
            raise ValueError("a clip norm is a float: {'low', 'high'} or {'values': [...]}")
        values = clip_norm.values if isinstance(clip_norm, Choice) else None
        if isinstance(clip_norm, FloatRange):
            values = [clip_norm.low, clip_norm.high]
        for value in values if values is not None else [clip_norm]:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (value is None or (number and math.isfinite(value) and value > 0)):
                raise ValueError(
                    f"a clip norm is a finite number > 0 (or null: none), got {short_repr(value)}"
                )
        return clip_norm

    @field_validator("beta1", "beta2")
    @classmethod
    def _unit_betas(cls, beta: Param | None) -> Param | None:
        if beta is not None:
            for value in param_bounds(beta):
                if not 0.0 <= value < 1.0:
                    raise ValueError(f"must be in [0, 1), got {short_repr(value)}")
        return beta

    @field_validator("hyperparameters")
    @classmethod
    def _shared_hyperparameters(
        cls, shared: dict[str, Override], info: ValidationInfo
    ) -> dict[str, Override]:
        optimizers = info.data.get("optimizers")
        if optimizers is None:  # already reported as invalid
            return shared
        for name, value in shared.items():
            if name in ("lr", "betas"):
                raise ValueError(f"{name}: set it with space.lr, beta1 and beta2")
            having = [f for f in optimizers if name in OPTIMIZERS[f].hyperparameters]
            if not having:
                valid = sorted(
                    {n for f in optimizers for n in OPTIMIZERS[f].hyperparameters} - {"lr"}
                )
                raise ValueError(
                    f"{name}: no family of this sweep has it (theirs: {', '.join(valid)})"
                )
            for family in having:
                try:
                    _check_override(family, name, value)
                except HyperparameterError as exc:
                    raise ValueError(f"{name} (for {family}): {exc}") from None
        return shared

    @field_validator("overrides")
    @classmethod
    def _valid_overrides(
        cls, overrides: dict[str, dict[str, FamilyOverride]], info: ValidationInfo
    ) -> dict[str, dict[str, FamilyOverride]]:
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
                if (name == "schedule") != isinstance(value, ScheduleSpace):
                    raise ValueError(
                        f"overrides.{family}.schedule: expected a schedule ({{'kind': ...}})"
                        if name == "schedule"
                        else f"overrides.{family}.{name}: a schedule goes under 'schedule'"
                    )
                if isinstance(value, ScheduleSpace):
                    continue
                if name not in spec.hyperparameters:
                    valid = ", ".join(spec.hyperparameters)
                    raise ValueError(
                        f"overrides.{family}.{name}: unknown hyperparameter (valid: {valid})"
                    )
                try:
                    _check_override(family, name, value)
                except HyperparameterError as exc:
                    raise ValueError(f"overrides.{family}.{name}: {exc}") from None
        return overrides


RAY_RESOLUTION = 0.0001
"""The smallest fraction of a CPU or GPU Ray accepts in a task's resources."""


class ResourcesSpec(StrictModel):
    """What each trial asks Ray for."""

    cpus_per_trial: float = Field(default=1.0, ge=RAY_RESOLUTION, le=100_000)
    gpus_per_trial: float = Field(default=0.0, ge=0, le=1_024)
    max_failures: int = Field(default=2, ge=0, le=100)
    pack: bool = True
    """Train compatible trials as packs (one batched model per task) when the workload can."""
    max_pack_size: int = Field(default=64, ge=1, le=4096)
    """The most trials one pack trains."""
    checkpoint_every: Annotated[int, Field(ge=0, le=100_000)] | Literal["auto"] = "auto"
    """Checkpoint each trial every this many epochs (and after its last); a retried attempt
    continues from the latest checkpoint. 0: never (a retry starts from scratch). "auto": as
    often as keeps checkpoints under 5% of the run's time (``optisweep.workers.pacing``)."""

    @field_validator("gpus_per_trial")
    @classmethod
    def _ray_accepts_gpus(cls, value: float) -> float:
        # Ray refuses the task otherwise, on every submission: reject the sweep up front.
        if 0 < value < RAY_RESOLUTION:
            raise ValueError(f"must be 0 or at least {RAY_RESOLUTION:g} (Ray's resolution)")
        if value > 1 and not value.is_integer():
            raise ValueError("must be a whole number above 1 (Ray shares a GPU, not several)")
        return value


class SweepCreate(StrictModel):
    """A sweep as submitted."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "rosenbrock-random",
                    "workload": {"name": "rosenbrock", "epochs": 2},
                    "space": {"optimizers": ["sgd", "adam"], "lr": {"low": 1e-4, "high": 0.1}},
                    "search": {"algorithm": "random", "num_trials": 2},
                    "objective": {"metric": "val_loss", "mode": "min"},
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    workload: WorkloadSpec
    code: CodeSpec | None = None
    """The user's code and pip packages, shipped to the workers (for ``workload.entrypoint``)."""
    space: Space
    search: SearchSpec = SearchSpec(algorithm="random", num_trials=16)
    objective: ObjectiveSpec = ObjectiveSpec()
    resources: ResourcesSpec = ResourcesSpec()
    scale: ScaleSpec | None = None
    """A scale study: every configuration trained at each size of a workload field, and the
    best lr's rule across sizes in the report (grid and random search)."""


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
    packing: str | None = None
    """What packing will not do although ``resources.pack`` is on: why the trials run one per
    task, or why their packs run under vmap rather than fused; None otherwise."""
    best_objective: float | None = None
    """The leaderboard's top objective so far (by mean over repeats with repeats), or None."""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class SweepPage(BaseModel):
    """A page of sweeps, newest first; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[SweepRead]
    next_cursor: str | None


class ExtendRequest(StrictModel):
    """More trials for a sweep (``POST /sweeps/{id}/extend``)."""

    trials: StrictInt = Field(ge=1, le=1_000_000)
    """How many more configurations (as ``search.num_trials`` counts them: each is trained
    ``search.repeats`` times)."""


class RerunRequest(StrictModel):
    """Which of a finished sweep's trials to train again (``POST /sweeps/{id}/rerun``)."""

    failed: StrictBool = True
    """The trials that failed."""
    stopped: StrictBool = False
    """The trials an early-stopping scheduler stopped."""


class SweepRerun(BaseModel):
    """A sweep whose trials go again, and how many."""

    sweep: SweepRead
    rerun: int
    """How many trials are queued again, each to continue from its last checkpoint."""
