"""What the API returns for trials, their metrics and a sweep's leaderboard."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationInfo, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from optisweep.service.trials.models import Trial, TrialState

NON_FINITE = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
"""How a response writes a number that is not finite (a diverged trial's loss)."""


def _non_finite_allowed(node: Any) -> None:
    """Every ``{"type": "number"}`` under ``node`` (a model's JSON schema) widened, in place,
    to a number or one of the strings a response writes for NaN and the infinities."""
    if isinstance(node, dict):
        if node.get("type") == "number":
            rest = {key: value for key, value in node.items() if key != "type"}
            node.clear()
            node.update(anyOf=[{"type": "number"}, {**NON_FINITE}], **rest)
            return
        for value in node.values():
            _non_finite_allowed(value)
    elif isinstance(node, list):
        for value in node:
            _non_finite_allowed(value)


class ReadModel(BaseModel):
    """Base of every response: reads ORM objects, writes NaN and inf as "NaN" / "Infinity",
    and its JSON schema (the OpenAPI one) says so: its numbers may be those strings."""

    model_config = ConfigDict(from_attributes=True, ser_json_inf_nan="strings")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The model's schema; as a response (serialisation), non-finite numbers allowed."""
        schema = handler(core_schema)
        if handler.mode == "serialization":
            _non_finite_allowed(handler.resolve_ref_schema(schema))
        return schema


CHECKPOINT_ROOT = "checkpoint_root"
"""The validation context key of TrialRead's checkpoint folder (without it, no path shows)."""


class TrialRead(ReadModel):
    """One trial: its configuration, where it ran, and how it ended."""

    id: int
    sweep_id: int
    number: int
    optimizer: str
    hyperparameters: dict[str, Any]
    settings: dict[str, Any] | None = None
    """The training settings searched for this trial (``batch_size``, ``clip_norm``)."""
    defaults: bool = False
    """A trial of the defaults-first stage: its family at its published defaults."""
    origin: str | None = None
    """Where its configuration came from when an earlier sweep measured it first
    (``search.warm_start``): ``sweep 5 trial 12``; null for the searcher's own."""
    seed: int
    status: TrialState
    attempt: int
    pack_id: str | None
    """The pack the trial trained in (None: alone); a packed trial's ``time_seconds`` is its
    share of the pack's time, each pack epoch's divided by the members that trained in it."""
    objective: float | None
    """The objective metric's value at the last epoch that ran."""
    best_objective: float | None
    """The best value the objective metric reached in any epoch."""
    error: str | None
    node_id: str | None
    device: str | None
    epochs_run: int = 0
    """Epochs the trial recorded."""
    checkpoint_path: str | None
    """The trial's latest checkpoint, relative to the server's checkpoint folder
    (OPTISWEEP_CHECKPOINT_DIR), where ``optisweep.workers.checkpoint.load_checkpoint`` reads it;
    None without one, or outside that folder (the API does not show the server's file system)."""
    checkpoint_epoch: int | None
    hyperparameter_history: list[dict[str, Any]] | None = None
    """PBT: [{"epoch", "source_trial_id", "source_trial" (its number in the sweep),
    "hyperparameters"}] for each exploit, oldest first."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @field_validator("checkpoint_path")
    @classmethod
    def _relative_to_root(cls, path: str | None, info: ValidationInfo) -> str | None:
        root = info.context.get(CHECKPOINT_ROOT) if info.context else None
        if path is None or root is None:
            return None
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            return None


@cache
def _checkpoint_root(checkpoint_dir: str) -> Path | None:
    """Settings.checkpoint_dir as the controller resolves it; None when checkpoints are off."""
    return Path(checkpoint_dir).expanduser().resolve() if checkpoint_dir else None


def trial_read(trial: Trial, *, checkpoint_dir: str) -> TrialRead:
    """A Trial row as the API shows it, its checkpoint relative to ``checkpoint_dir``."""
    return TrialRead.model_validate(
        trial, context={CHECKPOINT_ROOT: _checkpoint_root(checkpoint_dir)}
    )


class TrialEventRead(ReadModel):
    """One change of a trial's status."""

    at: datetime
    status: TrialState
    """The status the trial moved to."""
    attempt: int
    detail: str | None
    """Where it started, or why it ended or starts again."""


class TrialPage(BaseModel):
    """A page of trials; pass ``next_cursor`` as ``cursor`` to get the next one."""

    items: list[TrialRead]
    next_cursor: str | None


class MetricSeries(ReadModel):
    """One metric's values over a trial's epochs."""

    name: str
    steps: list[int]
    values: list[float]


class TrialMetrics(ReadModel):
    """A trial's learning curves: every metric at every epoch it reported."""

    trial_id: int
    series: list[MetricSeries]


class MetricPoint(ReadModel):
    """One metric of one trial at one epoch."""

    trial_id: int
    name: str
    step: int
    value: float


class MetricPage(BaseModel):
    """A page of a sweep's metrics, oldest first; pass ``next_cursor`` as ``cursor`` for the
    next one."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    items: list[MetricPoint]
    next_cursor: str | None


class LeaderboardEntry(ReadModel):
    """The best trial of one optimizer family."""

    rank: int
    optimizer: str
    ranked_trials: int
    """How many of the family's trials (configurations, with repeats) finished with a finite
    objective."""
    trial: TrialRead
    """The best trial (with repeats: the first repeat of the best configuration)."""
    objective_mean: float | None = None
    """With repeats: the configuration's mean objective over its repeats (what ranks it)."""
    objective_std: float | None = None
    """With repeats: the sample standard deviation over its repeats."""
    repeats: int = 1
    """With repeats: how many repeats finished with a finite objective."""
    objective_ci95: tuple[float, float] | None = None
    """With repeats: the 95% confidence interval of the mean (t-distribution)."""
    p_value: float | None = None
    """With repeats, below the leader: Welch's two-sided p-value against the leader's best
    configuration (None for the leader, or with fewer than two repeats on a side)."""
    tied_with_leader: bool | None = None
    """With repeats: whether the test cannot tell this family from the leader
    (p >= 0.05); the leader itself is tied with itself."""
    stopped_at: int | None = None
    """Where every ranked trial of the family was stopped early (ASHA, Hyperband, a median
    rule): the epoch its entry stopped at. Such families rank after every family with a trial
    that ran every epoch; None when the entry ran every epoch."""


class ObjectiveRead(ReadModel):
    """One objective of a sweep."""

    metric: str
    mode: str


class ParetoPoint(ReadModel):
    """A finished trial no other finished trial beats on every objective."""

    trial: int
    """The trial's number."""
    trial_id: int
    optimizer: str
    values: list[float]
    """Its final value of each objective, in ``objectives`` order."""


class Leaderboard(ReadModel):
    """Best trial per optimizer family, best family first; with several objectives, also the
    Pareto front over all of them."""

    sweep_id: int
    metric: str
    mode: str
    epoch: Literal["last", "best"] = "last"
    """Which epoch's value a trial's objective is here: the sweep's ``objective.summary``."""
    entries: list[LeaderboardEntry]
    statistics: str = ""
    """How far the ranking can be trusted: the test used, or that it is from single seeds."""
    objectives: list[ObjectiveRead] = []
    """With several objectives: all of them, the primary (``metric``, which ranks
    ``entries``) first; empty with one."""
    pareto_front: list[ParetoPoint] | None = None
    """With several objectives: the completed and stopped trials with a finite value of each
    that no other such trial dominates, best by the primary first; None with one objective."""
