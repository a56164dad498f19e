"""What the client returns: typed records of sweeps, trials, leaderboards, reports and metrics,
and lists of them that turn into pandas DataFrames.

The fields mirror the API's response models (a test holds them equal), so a record is what
the REST API documents, read with attribute access."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import pandas

FINISHED = ("completed", "cancelled", "failed")
"""A sweep's statuses once it runs no more."""


class Record(BaseModel):
    """Base of every record: immutable, and tolerant of fields a newer server adds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def row(self) -> dict[str, Any]:
        """The record as one flat row of a DataFrame."""
        return self.model_dump()


R = TypeVar("R", bound=Record)


class Records(list[R], Generic[R]):
    """A list of records; ``to_pandas()`` makes it a DataFrame, one row per record."""

    def to_pandas(self) -> pandas.DataFrame:
        """The records as a pandas DataFrame (``pip install 'optisweep[pandas]'``)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'optisweep[pandas]'") from None
        return pandas.DataFrame([record.row() for record in self])


def _flat(prefix: str, values: dict[str, Any] | None) -> dict[str, Any]:
    """Hyperparameters or settings as columns; a list (betas) as a tuple, a schedule as text."""
    flat: dict[str, Any] = {}
    for name, value in (values or {}).items():
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        flat[f"{prefix}{name}"] = value
    return flat


class LrRange(Record):
    """One family's learning-rate range test (``lr: auto``)."""

    low: float
    high: float
    lrs: list[float]
    losses: list[float]


class SweepInfo(Record):
    """A sweep as the server last showed it."""

    id: int
    name: str
    status: str
    num_trials: int
    trial_counts: dict[str, int]
    """Trials per status."""
    spec: dict[str, Any]
    lr_range: dict[str, LrRange] | None = None
    error: str | None = None
    packing: str | None = None
    best_objective: float | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """Whether it runs no more (completed, cancelled or failed)."""
        return self.status in FINISHED

    @property
    def done(self) -> int:
        """How many of its trials ended (any way)."""
        return sum(n for status, n in self.trial_counts.items() if status not in _UNDONE)

    def row(self) -> dict[str, Any]:
        """One row, without the spec and range-test curves."""
        return self.model_dump(exclude={"spec", "lr_range", "trial_counts"}) | {"done": self.done}


_UNDONE = ("pending", "running")


class Trial(Record):
    """One trial: its configuration, where it ran, and how it ended."""

    id: int
    sweep_id: int
    number: int
    optimizer: str
    hyperparameters: dict[str, Any]
    settings: dict[str, Any] | None = None
    defaults: bool = False
    origin: str | None = None
    """Where its configuration came from when an earlier sweep measured it first
    (``search.warm_start``): ``sweep 5 trial 12``."""
    seed: int
    status: str
    attempt: int
    pack_id: str | None = None
    objective: float | None = None
    best_objective: float | None = None
    error: str | None = None
    node_id: str | None = None
    device: str | None = None
    epochs_run: int = 0
    checkpoint_path: str | None = None
    checkpoint_epoch: int | None = None
    hyperparameter_history: list[dict[str, Any]] | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        """One row: hyperparameters and settings as their own columns."""
        base = self.model_dump(exclude={"hyperparameters", "settings", "hyperparameter_history"})
        return base | _flat("", self.hyperparameters) | _flat("", self.settings)


class LeaderboardEntry(Record):
    """The best trial of one optimizer family."""

    rank: int
    optimizer: str
    ranked_trials: int
    trial: Trial
    objective_mean: float | None = None
    objective_std: float | None = None
    repeats: int = 1
    objective_ci95: tuple[float, float] | None = None
    p_value: float | None = None
    tied_with_leader: bool | None = None
    stopped_at: int | None = None

    @property
    def objective(self) -> float | None:
        """What ranks the family: the mean over repeats, else the best trial's objective."""
        return self.objective_mean if self.objective_mean is not None else self.trial.objective

    def row(self) -> dict[str, Any]:
        """One row: rank, family, objective, the trial's number and its hyperparameters."""
        row = {
            "rank": self.rank,
            "optimizer": self.optimizer,
            "objective": self.objective,
            "trial": self.trial.number,
            "trial_id": self.trial.id,
            "ranked_trials": self.ranked_trials,
        }
        if self.repeats > 1:
            row |= self.model_dump(include={"objective_std", "repeats", "p_value"})
            row["tied_with_leader"] = self.tied_with_leader
        return row | _flat("", self.trial.hyperparameters) | _flat("", self.trial.settings)


class Objective(Record):
    """One objective of a sweep."""

    metric: str
    mode: str


class ParetoPoint(Record):
    """A finished trial no other beats on every objective."""

    trial: int
    """The trial's number."""
    trial_id: int
    optimizer: str
    values: list[float]
    """Its final value of each objective, in the leaderboard's ``objectives`` order."""


class Leaderboard(Records[LeaderboardEntry]):
    """The best trial per optimizer family, best first, and what ranks them; with several
    objectives, ``objectives`` and their Pareto front (``pareto_front``)."""

    def __init__(
        self,
        entries: list[LeaderboardEntry],
        *,
        metric: str,
        mode: str,
        epoch: str = "last",
        statistics: str = "",
        objectives: list[Objective] | None = None,
        pareto_front: Records[ParetoPoint] | None = None,
    ) -> None:
        super().__init__(entries)
        self.metric = metric
        self.mode = mode
        self.epoch = epoch
        """Which epoch's value a trial's objective is: "last" or "best" (the sweep's
        ``objective.summary``)."""
        self.statistics = statistics
        """How far the ranking can be trusted."""
        self.objectives = objectives or []
        """With several objectives: all of them, the primary (``metric``) first."""
        self.pareto_front = pareto_front
        """With several objectives: the non-dominated finished trials; None with one."""

    @classmethod
    def from_api(cls, board: dict[str, Any]) -> Leaderboard:
        """The leaderboard from the API's JSON answer."""
        entries = [LeaderboardEntry.model_validate(entry) for entry in board["entries"]]
        front = board.get("pareto_front")
        return cls(
            entries,
            metric=board["metric"],
            mode=board["mode"],
            epoch=board.get("epoch", "last"),
            statistics=board["statistics"],
            objectives=[Objective.model_validate(o) for o in board.get("objectives") or []],
            pareto_front=None
            if front is None
            else Records(ParetoPoint.model_validate(point) for point in front),
        )


class FamilyReport(Record):
    """What a sweep says about one optimizer family, and one sentence to act on."""

    optimizer: str
    best_trial: int | None = None
    best_objective: float | None = None
    best_lr: float | None = None
    best_hyperparameters: dict[str, Any] | None = None
    best_settings: dict[str, Any] | None = None
    basin_low: float | None = None
    basin_high: float | None = None
    basin_decades: float | None = None
    basin_configurations: int
    open_below: bool
    open_above: bool
    configurations: int
    diverged: int
    lowest_diverged_lr: float | None = None
    default_trial: int | None = None
    default_objective: float | None = None
    default_lr: float | None = None
    tuning_gain: float | None = None
    tuning_gain_relative: float | None = None
    lr_tuning_gain: float | None = None
    summary: str

    def row(self) -> dict[str, Any]:
        """One row, the best configuration's hyperparameters as ``best_*`` columns."""
        base = self.model_dump(exclude={"best_hyperparameters", "best_settings"})
        return base | _flat("best_", self.best_hyperparameters) | _flat("best_", self.best_settings)


class WarmSource(Record):
    """What a warm-started sweep learnt from one earlier sweep."""

    sweep_id: int
    finished: int
    used: int
    left_out: dict[str, int]
    """Why the trials not used were left out: reason -> how many."""


class WarmStart(Record):
    """What a sweep learnt from earlier sweeps (``search.warm_start``)."""

    sources: list[WarmSource]
    retrained: list[int]
    """Its trials that trained an earlier sweep's configuration again (grid, random)."""
    summary: str


class ScalePoint(Record):
    """A family's best lr at one size of a scale study, with its basin."""

    size: float
    best_lr: float
    basin_low: float | None = None
    basin_high: float | None = None
    centre_lr: float
    """lr* at this size, what the rule is fitted to: the basin's geometric centre."""


class ScaleFamily(Record):
    """A family's rule across sizes: log lr* = intercept + slope log size, and its
    prediction."""

    optimizer: str
    points: list[ScalePoint]
    slope: float | None = None
    intercept: float | None = None
    slope_low: float | None = None
    slope_high: float | None = None
    predicted_lr: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    range_low: float | None = None
    range_high: float | None = None
    summary: str


class ScaleStudy(Record):
    """A scale study (``scale``): per family its best lr at each size and its rule."""

    field: str
    sizes: list[float]
    predict: float | None = None
    families: list[ScaleFamily]
    summary: str


class Report(Records[FamilyReport]):
    """The optimizer report: its ``verdict``, then every family in the leaderboard's order."""

    def __init__(
        self,
        families: list[FamilyReport],
        *,
        metric: str,
        mode: str,
        tolerance: float,
        epoch: str = "last",
        verdict: str = "",
        warm_start: WarmStart | None = None,
        scale_study: ScaleStudy | None = None,
    ) -> None:
        super().__init__(families)
        self.warm_start = warm_start
        self.scale_study = scale_study
        """A scale study's rule per family and its prediction; None without one."""
        """What the sweep learnt from earlier sweeps; None without a warm start."""
        self.metric = metric
        self.mode = mode
        self.tolerance = tolerance
        self.epoch = epoch
        """Which epoch's value each family's best is: "last" or "best"."""
        self.verdict = verdict
        """Which family to pick, why and how sure, in one or two sentences."""

    @classmethod
    def from_api(cls, found: dict[str, Any]) -> Report:
        """The report from the API's JSON answer."""
        families = [FamilyReport.model_validate(family) for family in found["families"]]
        return cls(
            families,
            metric=found["metric"],
            mode=found["mode"],
            tolerance=found["tolerance"],
            epoch=found.get("epoch", "last"),
            verdict=found.get("verdict", ""),
            warm_start=(
                WarmStart.model_validate(found["warm_start"]) if found.get("warm_start") else None
            ),
            scale_study=(
                ScaleStudy.model_validate(found["scale_study"])
                if found.get("scale_study")
                else None
            ),
        )


class MetricPoint(Record):
    """One metric of one trial at one epoch."""

    trial_id: int
    name: str
    step: int
    value: float


class CodeUpload(Record):
    """A project directory shipped to the server as a code package."""

    package: str
    """Its id (a content hash): what a spec's ``code.package`` names."""
    directory: str
    files: int
    bytes: int
    existed: bool
    """The server had it already (the same code uploaded before)."""
