"""What the dashboard's chart endpoints answer, and the query parameters they share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from optisweep.service.trials.models import TrialState

MaxPoints = Annotated[int, Query(ge=3, le=10_000, description="Points per curve at most.")]
Limit = Annotated[int, Query(ge=1, le=10_000, description="Trials at most, best first.")]


PointsPerFamily = Annotated[
    int, Query(ge=3, le=100_000, description="Points per family at most (downsampled).")
]


class ChartJSON(JSONResponse):
    """A chart's model written by pydantic-core in one pass: FastAPI would validate and encode it
    again, which costs ~10x as much for the tens of thousands of numbers a chart carries. (A
    JSONResponse, so that the OpenAPI schema shows the chart's model.)"""

    def render(self, content: Any) -> bytes:
        """The model as JSON bytes."""
        assert isinstance(content, BaseModel)
        return content.model_dump_json().encode()


class Curve(BaseModel):
    """One trial's curve of one metric, downsampled."""

    trial_id: int
    number: int
    optimizer: str
    status: TrialState
    best_in_family: bool
    steps: list[float]
    values: list[float | None]


class Curves(BaseModel):
    """Learning curves of a sweep's best trials (plus every family's best)."""

    metric: str
    total_trials: int
    curves: list[Curve]


class FamilyPoints(BaseModel):
    """One family's points of a scatter or line chart."""

    optimizer: str
    x: list[float]
    y: list[float]
    trial_ids: list[int]


class Series(BaseModel):
    """Per family, points for one chart."""

    metric: str
    mode: str
    families: list[FamilyPoints]


class ObjectivePoints(BaseModel):
    """A multi-objective sweep's ranked trials on its first two objectives (x, y), and its
    Pareto front over all of them; empty with one objective."""

    objectives: list[str]
    modes: list[str]
    families: list[FamilyPoints]
    front: FamilyPoints
    """The non-dominated trials, in the order of the first objective (best first)."""


class ParallelRow(BaseModel):
    """One trial in parallel coordinates (betas are None for families without them)."""

    trial_id: int
    optimizer: str
    lr: float
    beta1: float | None
    beta2: float | None
    batch_size: int | str | None = None
    """The trial's searched batch size ("full": the whole training set), if the sweep
    searches it."""
    clip_norm: float | None = None
    """Its searched clip norm (None: no clipping, or not searched)."""
    schedule: str | None = None
    """Its searched lr schedule's kind, if the sweep searches schedules."""
    warmup_steps: int | None = None
    """Its schedule's warm-up, if the sweep searches warm-ups."""
    objective: float


class Parallel(BaseModel):
    """The best trials as rows for parallel coordinates."""

    settings: list[str] = []
    """The training settings the sweep searches (``batch_size``, ``clip_norm``,
    ``schedule``, ``warmup_steps``): their axes."""

    metric: str
    rows: list[ParallelRow]


class Importance(BaseModel):
    """How much each hyperparameter matters to the objective (Optuna's importance evaluators)."""

    metric: str
    method: str
    optimizer: str | None = None
    """The family the estimate is within (None: across families)."""
    trials: int
    """How many finished trials the estimate used."""
    importances: dict[str, float]
